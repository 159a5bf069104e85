package signaling

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
)

// TestConsoleAlerts: the console raises an alert for a class with a
// quarter of its judged students bad, a node at 90% of its capacity, this
// node's NATS connection lost and a recording that failed lately, and
// none for a healthy view.
func TestConsoleAlerts(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{ready: func() error { return errors.New("NATS disconnected") }})
	now := time.Now()
	kinds := func(v consoleView) []string {
		var out []string
		for _, a := range env.srv.consoleAlerts(v, "", now) {
			out = append(out, a.Kind+" "+a.Node+" "+a.Room)
		}
		return out
	}
	student := func(room, verdict string) consoleConnOut {
		return consoleConnOut{Room: room, Role: "student", Verdict: verdict}
	}
	healthy := consoleView{
		Nodes:       []consoleNode{{ID: "a", NATS: "connected", Students: 89, Capacity: 100}},
		Classes:     []consoleClass{{Room: "r1", BadStudents: 1}},
		Connections: []consoleConnOut{student("r1", "bad"), student("r1", "good"), student("r1", "good"), student("r1", "good"), student("r1", "good")},
	}
	require.Empty(t, kinds(healthy), "1 bad of 5, 89 of 100")

	sick := consoleView{Node: "a",
		Nodes:       []consoleNode{{ID: "a", NATS: "disconnected"}, {ID: "b", Students: 90, Capacity: 100}},
		Classes:     []consoleClass{{Room: "r1", BadStudents: 1}},
		Connections: []consoleConnOut{student("r1", "bad"), student("r1", "good"), student("r1", "weak"), student("r1", "")},
	}
	env.srv.rec.lastFail.Store(&recFailure{room: "r2", reason: "disk_full", at: now.Add(-time.Minute)})
	require.ElementsMatch(t, []string{"class_bad_quality a r1", "nats_disconnected a ", "node_near_capacity b ",
		"recording_failed a r2"}, kinds(sick))
	env.srv.rec.lastFail.Store(&recFailure{room: "r2", reason: "disk_full", at: now.Add(-time.Hour)})
	require.NotContains(t, kinds(sick), "recording_failed a r2", "an old failure")
}

func openConsoleStream(t *testing.T, env *testEnv, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.http.URL+"/api/operator/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := env.http.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestConsoleStream: an operator's stream sends a view per line, every
// period; an operator of one class sees only it; other roles are refused;
// past maxConsoleStreams open streams the next is 429; Shutdown ends them.
func TestConsoleStream(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	env.join(env.token("algebra", auth.RoleTeacher, "t1", "Ms Rivera"))
	op := env.token(auth.AllRooms, auth.RoleOperator, "op", "Ops")

	resp := openConsoleStream(t, env, op)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	lines := bufio.NewScanner(resp.Body)
	var at []time.Time
	for range 2 {
		require.True(t, lines.Scan(), "a view per line")
		var v consoleView
		require.NoError(t, json.Unmarshal(lines.Bytes(), &v))
		require.Len(t, v.Classes, 1)
		require.Equal(t, "algebra", v.Classes[0].Room)
		at = append(at, v.At)
	}
	require.GreaterOrEqual(t, at[1].Sub(at[0]), consolePeriod/2, "one view per period")

	other := openConsoleStream(t, env, env.token("geometry", auth.RoleOperator, "op2", "Ops"))
	require.Equal(t, http.StatusOK, other.StatusCode)
	sc := bufio.NewScanner(other.Body)
	require.True(t, sc.Scan())
	var v consoleView
	require.NoError(t, json.Unmarshal(sc.Bytes(), &v))
	require.Empty(t, v.Classes, "an operator of another class")
	require.Empty(t, v.Nodes)
	require.Equal(t, http.StatusForbidden, openConsoleStream(t, env, env.token("algebra", auth.RoleTeacher, "t2", "T")).StatusCode)

	for i := 2; i < maxConsoleStreams; i++ {
		require.Equal(t, http.StatusOK, openConsoleStream(t, env, op).StatusCode)
	}
	require.Equal(t, http.StatusTooManyRequests, openConsoleStream(t, env, op).StatusCode)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, env.srv.Shutdown(ctx), "open streams end with the server")
	for lines.Scan() {
	}
}
