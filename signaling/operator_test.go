package signaling

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
