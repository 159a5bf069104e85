package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

// auditLines keeps the JSON lines a node logs, to read its audit events.
type auditLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (a *auditLines) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.Write(p)
}

// events returns the audit events logged so far.
func (a *auditLines) events(t *testing.T) []map[string]any {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(a.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var ev map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &ev), "a log line that is not JSON: %s", line)
		if ev["audit"] == true {
			out = append(out, ev)
		}
	}
	return out
}

// has reports whether an audit event holds every field of want.
func (a *auditLines) has(t *testing.T, want map[string]any) (bool, string) {
	evs := a.events(t)
	for _, ev := range evs {
		match := true
		for k, v := range want {
			match = match && fmt.Sprint(ev[k]) == fmt.Sprint(v)
		}
		if match {
			return true, ""
		}
	}
	return false, fmt.Sprintf("no %v among %d audit events %v", want, len(evs), evs)
}

// TestAuditLog runs a class on a node that logs only warnings and reads
// its log: a teacher's and students' joins, an invite exchanged for a
// student's token (an admission), an invitation to speak and a removal
// by the teacher, a recording
// started and stopped through the API, and the leaves are each one audit
// event with the class and participant ids.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	lines := &auditLines{}
	srv := startServerLog(t, "tokens", zerolog.New(lines).Level(zerolog.WarnLevel).With().Timestamp().Logger(), nil)
	room := newRoom()
	teacherTok := srv.token(t, room, auth.RoleTeacher, "Ms Rivera")
	teacher := srv.dial(t, teacherTok, client.Options{NoSubscribe: true})
	tid := teacher.ID()

	invite, err := client.MintInvite(srv.signer, room)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adaTok, err := client.JoinInvite(ctx, srv.base, invite, "Ada")
	require.NoError(t, err)
	ada := srv.dial(t, adaTok, client.Options{NoSubscribe: true})
	bob := srv.dial(t, srv.token(t, room, auth.RoleStudent, "Bob"), client.Options{NoSubscribe: true})

	var rec struct {
		ID string `json:"id"`
	}
	apiCall(t, http.MethodPost, srv.base+"/api/rooms/"+room+"/recording", teacherTok, http.StatusCreated, &rec)
	require.NoError(t, teacher.Invite(ada.ID()))
	require.NoError(t, teacher.Remove(bob.ID()))
	<-bob.Done()
	apiCall(t, http.MethodDelete, srv.base+"/api/rooms/"+room+"/recording", teacherTok, http.StatusOK, nil)
	require.NoError(t, ada.Close())

	want := []map[string]any{
		{"event": "join", "room": room, "participant": tid, "role": "teacher", "transport": "ws", "again": false},
		{"event": "admit", "room": room, "participant": ada.ID(), "role": "student"},
		{"event": "join", "room": room, "participant": ada.ID(), "role": "student", "transport": "ws"},
		{"event": "join", "room": room, "participant": bob.ID(), "role": "student"},
		{"event": "recording_start", "room": room, "recording": rec.ID, "by": tid},
		{"event": "moderate", "action": "invite", "room": room, "participant": ada.ID(), "by": tid},
		{"event": "remove", "room": room, "participant": bob.ID(), "by": tid},
		{"event": "recording_stop", "room": room, "recording": rec.ID, "by": tid, "reason": "requested"},
		{"event": "leave", "room": room, "participant": ada.ID(), "role": "student", "transport": "ws"},
	}
	for _, w := range want {
		waitFor(t, 10*time.Second, fmt.Sprintf("audit event %v", w), func() (bool, string) { return lines.has(t, w) })
	}
	// A removed participant is audited as removed, not also as leaving.
	ok, _ := lines.has(t, map[string]any{"event": "leave", "participant": bob.ID()})
	require.False(t, ok, "bob's removal also logged as a leave")
	for _, ev := range lines.events(t) {
		require.NotContains(t, ev, "level", "audit events carry no level: %v", ev)
	}
}
