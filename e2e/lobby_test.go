package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

// TestLobbyLinks follows the links of a class made in the lobby: the
// teacher link joins as teacher, the invite is exchanged for a personal
// token, and the invite itself cannot join.
func TestLobbyLinks(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "open")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	class, err := client.CreateClass(ctx, srv.base, "Algebra", "Ms Noether")
	require.NoError(t, err)
	require.NotEmpty(t, class.Room)
	require.True(t, strings.HasPrefix(class.TeacherURL, "/room/"+class.Room+"#token="), class.TeacherURL)

	teacher := srv.dial(t, class.TeacherToken, client.Options{})
	require.Equal(t, "teacher", teacher.Me().Role)
	require.Equal(t, "Ms Noether", teacher.Me().Name)
	require.Equal(t, class.Room, teacher.Welcome().Room)

	_, err = client.Dial(ctx, srv.base, class.InviteToken, client.Options{})
	require.Equal(t, client.CloseUnauthorized, client.CloseCode(err), "an invite cannot join: %v", err)

	tok, err := client.JoinInvite(ctx, srv.base, class.InviteToken, "Emmy")
	require.NoError(t, err)
	claims, err := srv.signer.Verify(tok)
	require.NoError(t, err)
	require.Equal(t, auth.RoleStudent, claims.Role)
	require.False(t, claims.Invite)
	student := srv.dial(t, tok, client.Options{})
	require.Equal(t, "Emmy", student.Me().Name)
	require.Eventually(t, func() bool {
		_, ok := teacher.Participant(student.ID())
		return ok
	}, 10*time.Second, 20*time.Millisecond, "teacher sees the student join")

	other, err := client.JoinInvite(ctx, srv.base, class.InviteToken, "Emmy")
	require.NoError(t, err)
	otherClaims, err := srv.signer.Verify(other)
	require.NoError(t, err)
	require.NotEqual(t, claims.Participant, otherClaims.Participant, "each exchange is a new participant")

	tests := []struct {
		name, invite, student string
		status                int
	}{
		{"empty name", class.InviteToken, "", http.StatusBadRequest},
		{"name too long", class.InviteToken, strings.Repeat("x", 65), http.StatusBadRequest},
		{"not a token", "nonsense", "Emmy", http.StatusUnauthorized},
		{"personal token", tok, "Emmy", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		_, err := client.JoinInvite(ctx, srv.base, tc.invite, tc.student)
		var he *client.HTTPError
		require.ErrorAs(t, err, &he, tc.name)
		require.Equal(t, tc.status, he.Status, "%s: %s", tc.name, he.Body)
	}
}

// TestTokensModeRefusesLobby: with --auth tokens only tokens minted with
// the secret join; the lobby cannot create classes.
func TestTokensModeRefusesLobby(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "tokens")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := client.CreateClass(ctx, srv.base, "Algebra", "Ms Noether")
	var he *client.HTTPError
	require.ErrorAs(t, err, &he)
	require.Equal(t, http.StatusForbidden, he.Status)

	other, err := auth.NewSigner([]byte(strings.Repeat("k", auth.MinSecretLen)))
	require.NoError(t, err)
	forged, err := client.MintToken(other, newRoom(), auth.RoleTeacher, "Mallory", "")
	require.NoError(t, err)
	_, err = client.Dial(ctx, srv.base, forged, client.Options{})
	require.Equal(t, client.CloseUnauthorized, client.CloseCode(err), "a token signed elsewhere: %v", err)
}
