package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

// TestWHIPBrowserStudent: a teacher goes live from a WHIP client (pion,
// publishing the test clip as OBS would) and a student on the class page,
// in headless Chromium, sees the teacher's video play; a WHEP player
// watches the same class. DELETE ends the broadcast for both.
func TestWHIPBrowserStudent(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServer(t, "open")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	class, err := client.CreateClass(ctx, srv.base, "OBS class", "Ms Teacher")
	require.NoError(t, err)

	b := newBrowser(t, chromium)
	ada := b.open(t, "ada", srv.base+withQuery(class.StudentURL, "name=Ada"))
	teacherTok := srv.token(t, class.Room, auth.RoleTeacher, "Ms Teacher")
	session := publishWHIP(t, srv, class.Room, teacherTok)
	ada.waitVideoPlaying(t)

	viewer := watchWHEP(t, srv, class.Room, srv.token(t, class.Room, auth.RoleStudent, "Player"))
	viewer.waitMedia(t, 50)
	require.Equal(t, int32(1), viewer.firstKey.Load(), "the WHEP player starts on a keyframe")

	status, _, body := mediaHTTP(t, http.MethodDelete, session, srv.token(t, class.Room, auth.RoleTeacher, "Ms Teacher"), "")
	require.Equal(t, http.StatusForbidden, status, "another teacher token is another participant: %s", body)
	status, _, body = mediaHTTP(t, http.MethodDelete, session, teacherTok, "")
	require.Equal(t, http.StatusOK, status, body)
	status, _, _ = mediaHTTP(t, http.MethodDelete, session, teacherTok, "")
	require.Equal(t, http.StatusNotFound, status)
}
