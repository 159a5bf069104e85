package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

// waitClassEnded waits for c's websocket to close with 4010.
func waitClassEnded(t *testing.T, c *client.Client, who string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: the websocket stays open after the class ended", who)
	}
	require.Equal(t, client.CloseClassEnded, c.CloseCode(), who)
	var ce *client.CloseError
	require.True(t, errors.As(c.Err(), &ce), "%s: %v", who, c.Err())
	require.Equal(t, "the class has ended", ce.Text, who)
}

// TestEndClassAPI: on a whole node, DELETE /api/rooms/{room} is refused
// without a token, for a student, and for a teacher or operator of
// another class; an operator token of the class ends it: the teacher's
// and the student's connections close with 4010 (and the Go client does
// not join again), the WHEP viewer's peer connection is closed, the
// recording stops complete, and the audit log says who ended it. An operator token for every class and the
// class's teacher may end it too.
func TestEndClassAPI(t *testing.T) {
	t.Parallel()
	lines := &auditLines{}
	srv := startServerLog(t, "tokens", zerolog.New(lines).Level(zerolog.WarnLevel).With().Timestamp().Logger(), nil)
	room, teacher, students := liveClass(t, srv, "Ada")
	ada := students[0]
	receivesVideo(t, ada, teacher.ID(), 30*time.Second)
	viewer := watchWHEP(t, srv, room, srv.token(t, room, auth.RoleStudent, "Viewer"))
	viewer.waitMedia(t, 20)
	teacherTok := srv.token(t, room, auth.RoleTeacher, "Ms Rivera")
	var started struct {
		ID string `json:"id"`
	}
	apiCall(t, http.MethodPost, srv.base+"/api/rooms/"+room+"/recording", teacherTok, http.StatusCreated, &started)

	end := srv.base + "/api/rooms/" + room
	other := newRoom()
	apiCall(t, http.MethodDelete, end, "", http.StatusUnauthorized, nil)
	apiCall(t, http.MethodDelete, end, srv.token(t, room, auth.RoleStudent, "Ada"), http.StatusForbidden, nil)
	apiCall(t, http.MethodDelete, end, srv.token(t, other, auth.RoleOperator, "Other ops"), http.StatusForbidden, nil)
	apiCall(t, http.MethodDelete, end, srv.token(t, other, auth.RoleTeacher, "Other teacher"), http.StatusForbidden, nil)
	apiCall(t, http.MethodDelete, srv.base+"/api/rooms/"+other, operatorToken(t, srv.signer), http.StatusNotFound, nil)
	select {
	case <-ada.Done():
		t.Fatal("a refused request ended the class")
	case <-time.After(500 * time.Millisecond):
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	classOps, err := client.MintToken(srv.signer, room, auth.RoleOperator, "Class ops", "ops-1")
	require.NoError(t, err)
	got, err := client.EndClass(ctx, srv.base, classOps, room)
	require.NoError(t, err)
	require.Equal(t, client.Ended{Room: room, Participants: 3}, got, "the teacher, Ada, the WHEP viewer")
	waitClassEnded(t, teacher, "the teacher")
	waitClassEnded(t, ada, "the student")
	_, err = ada.Reconnect(ctx)
	require.ErrorIs(t, err, client.ErrClassEnded)
	waitFor(t, 15*time.Second, "the WHEP viewer's peer connection to end", func() (bool, string) {
		s := viewer.pc.ConnectionState()
		return s != webrtc.PeerConnectionStateConnected, s.String()
	})
	var recs struct {
		Recordings []recEntry `json:"recordings"`
	}
	apiCall(t, http.MethodGet, srv.base+"/api/recordings", operatorToken(t, srv.signer), http.StatusOK, &recs)
	require.Len(t, recs.Recordings, 1)
	require.Equal(t, started.ID, recs.Recordings[0].ID)
	require.True(t, recs.Recordings[0].Complete, "the recording stopped with the class")
	for _, want := range []map[string]any{
		{"event": "class_end", "room": room, "by": "ops-1", "participants": 3},
		{"event": "recording_stop", "room": room, "recording": started.ID, "by": "ops-1", "reason": "class_ended"},
	} {
		ok, why := lines.has(t, want)
		require.True(t, ok, why)
	}

	// The class opens anew with a join; "*" and its teacher end it too.
	for _, tok := range []string{operatorToken(t, srv.signer), teacherTok} {
		back := srv.dial(t, srv.token(t, room, auth.RoleStudent, "Bea"), client.Options{NoSubscribe: true})
		_, err := client.EndClass(ctx, srv.base, tok, room)
		require.NoError(t, err)
		waitClassEnded(t, back, "a student of the new class")
	}
	_, err = client.EndClass(ctx, srv.base, teacherTok, room)
	var he *client.HTTPError
	require.True(t, errors.As(err, &he), "%v", err)
	require.Equal(t, http.StatusNotFound, he.Status, "nothing left to end")
}

// testEndClassAnyNode: the teacher is live on A, a student watches on B
// through a relay; an operator asks C, which carries nothing of the
// class, to end it: both close with 4010.
func testEndClassAnyNode(t *testing.T, a, b, c *node) {
	room := newRoom()
	teacher, _ := goLive(t, a, room)
	student := b.dial(t, b.token(t, room, auth.RoleStudent, "Sam"), client.Options{})
	receivesVideo(t, student, teacher.ID(), 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := client.EndClass(ctx, c.base, operatorToken(t, c.signer), room)
	require.NoError(t, err, "ended from %s", c.name)
	require.Zero(t, got.Participants, "nobody of the class on C")
	waitClassEnded(t, teacher, "the teacher on A")
	waitClassEnded(t, student, "the student on B")
	waitFor(t, 15*time.Second, "the class to leave the directory", func() (bool, string) {
		var rooms struct {
			Rooms []struct {
				Room string `json:"room"`
			} `json:"rooms"`
		}
		getJSON(t, c.base+"/api/rooms", operatorToken(t, c.signer), &rooms)
		for _, r := range rooms.Rooms {
			if r.Room == room {
				return false, fmt.Sprintf("%v", rooms.Rooms)
			}
		}
		return true, ""
	})
}
