package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lectern/app"
	"lectern/auth"
	"lectern/client"
	"lectern/cluster"
	"lectern/internal/natstest"
	"lectern/sfu"
)

// outageFor is how long NATS stays away: three times the registry's
// GoneAfter, so that every announcement is long overdue when it returns.
const outageFor = 15 * time.Second

// startExternalNodes runs one Lectern node per id, all joined to the
// external NATS at url, and returns once every node hears every other
// and mirrors the directory.
func startExternalNodes(t *testing.T, url string, ids ...string) []*node {
	t.Helper()
	nodes := make([]*node, 0, len(ids))
	for _, id := range ids {
		cfg := clusterNodeConfig(t, id)
		cfg.NATS = []string{url}
		require.NoError(t, cfg.Validate())
		a, err := app.New(cfg, testLogger(t))
		require.NoError(t, err)
		require.NoError(t, a.Start())
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			require.NoError(t, a.Shutdown(ctx))
		})
		nodes = append(nodes, nodeOf(a))
	}
	waitClusterFormed(t, nodes, 30*time.Second)
	return nodes
}

// readyz is the status of a node's GET /readyz.
func readyz(t *testing.T, n *node) int {
	t.Helper()
	resp, err := http.Get(n.base + "/readyz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// clusterView is what an operator sees of the cluster from one node.
func clusterView(t *testing.T, n *node, op string) (nodes map[string]string, origins map[string]string) {
	t.Helper()
	var ns struct {
		Nodes []struct {
			ID       string `json:"id"`
			Liveness string `json:"liveness"`
		} `json:"nodes"`
	}
	var rs struct {
		Rooms []struct {
			Room   string `json:"room"`
			Origin string `json:"origin"`
		} `json:"rooms"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, n.base+"/api/nodes", op, &ns))
	require.Equal(t, http.StatusOK, getJSON(t, n.base+"/api/rooms", op, &rs))
	nodes, origins = map[string]string{}, map[string]string{}
	for _, x := range ns.Nodes {
		nodes[x.ID] = x.Liveness
	}
	for _, r := range rs.Rooms {
		origins[r.Room] = r.Origin
	}
	return nodes, origins
}

// TestClusterNATSOutage: two nodes on an external nats-server, the
// teacher on A, a student on B receiving the video through B's relay;
// another class is relayed the other way between the same two nodes,
// its teacher on B and a student on A. NATS goes away for 15 s: both
// students keep receiving video all along and both nodes report not
// ready; meanwhile a student leaves B, another joins there, and a third
// class begins on B. NATS comes back on the same port and store: both
// nodes are ready again with no restart, both list the class's
// participants right, the class begun meanwhile gets its origin, a new
// student on B receives the video, chat crosses nodes, operators see
// both nodes and both relayed classes on their origins, A is still the
// class's only origin, and both relays still carry video.
func TestClusterNATSOutage(t *testing.T) {
	t.Parallel()
	nats := natstest.Start(t)
	nodes := startExternalNodes(t, nats.URL(), "a", "b")
	a, b := nodes[0], nodes[1]
	room := newRoom()
	op := a.token(t, "*", auth.RoleOperator, "Ops")

	teacher := a.dial(t, a.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
	publishClip(t, teacher, clipIVF, clipOgg)
	s1 := b.dial(t, b.token(t, room, auth.RoleStudent, "Student 1"), client.Options{})
	require.Equal(t, b.url, s1.BaseURL())
	receivesVideo(t, s1, teacher.ID(), 20*time.Second)
	relayed := s1.SubscriptionOf(teacher.ID(), client.LabelCamera)
	leaver := b.dial(t, b.token(t, room, auth.RoleStudent, "Leaver"), client.Options{NoSubscribe: true})
	require.Eventually(t, func() bool { _, ok := teacher.Participant(leaver.ID()); return ok }, 10*time.Second, 20*time.Millisecond)
	back := newRoom() // relayed from B to A
	teacherB := b.dial(t, b.token(t, back, auth.RoleTeacher, "Teacher B"), client.Options{})
	require.Equal(t, b.url, teacherB.BaseURL())
	publishClip(t, teacherB, clipIVF, "")
	onA := a.dial(t, a.token(t, back, auth.RoleStudent, "Student A"), client.Options{})
	require.Equal(t, a.url, onA.BaseURL())
	receivesVideo(t, onA, teacherB.ID(), 20*time.Second)
	relayedBack := onA.SubscriptionOf(teacherB.ID(), client.LabelCamera)
	// Each node sends its camera once, to the other's relay.
	oneRelayEachWay(t, nodes)
	entry, err := b.app.Cluster().Directory.Lookup(context.Background(), sfu.RoomID(room))
	require.NoError(t, err)
	require.Equal(t, cluster.NodeID("a"), entry.Origin)

	nats.Stop()
	for _, n := range nodes {
		waitFor(t, 10*time.Second, "node "+n.name+" not ready", func() (bool, string) {
			code := readyz(t, n)
			return code == http.StatusServiceUnavailable, fmt.Sprintf("/readyz %d", code)
		})
	}
	start := time.Now()
	// Participants come and go on B meanwhile: B serves them on its own.
	require.NoError(t, leaver.Close())
	late := b.dial(t, b.token(t, room, auth.RoleStudent, "Late"), client.Options{})
	require.Equal(t, b.url, late.BaseURL())
	receivesVideo(t, late, teacher.ID(), 10*time.Second)
	// A class begins on B: nothing can claim it before NATS is back.
	room2 := newRoom()
	teacher2 := b.dial(t, b.token(t, room2, auth.RoleTeacher, "Teacher 2"), client.Options{})
	require.Equal(t, b.url, teacher2.BaseURL())
	relays := []received{
		{"the student on B", s1, teacher.ID(), client.LabelCamera},
		{"the student on A", onA, teacherB.ID(), client.LabelCamera},
	}
	gaps := keepsFlowing(t, outageFor-time.Since(start), 2*time.Second, relays, func() {
		for _, n := range nodes {
			require.Equal(t, http.StatusServiceUnavailable, readyz(t, n), "node %s during the outage", n.name)
		}
	})
	for _, n := range nodes {
		_, origins := clusterView(t, n, op)
		require.Equal(t, "a", origins[room], "node %s still shows the class on A, as last mirrored", n.name)
	}

	nats.Start()
	restarted := time.Now()
	for _, n := range nodes {
		waitFor(t, 15*time.Second, "node "+n.name+" ready again", func() (bool, string) {
			code := readyz(t, n)
			return code == http.StatusOK, fmt.Sprintf("/readyz %d", code)
		})
	}
	t.Logf("both nodes ready %v after NATS listened again; longest wait for new video during the outage (polled every 250 ms): %s",
		time.Since(restarted).Round(10*time.Millisecond), gaps)

	t.Run("the class's participants are the same on both nodes", func(t *testing.T) {
		want := []string{teacher.ID(), s1.ID(), late.ID()}
		for _, c := range []*client.Client{teacher, s1, late} {
			waitFor(t, 15*time.Second, c.Me().Name+"'s participant list", func() (bool, string) {
				var got []string
				for _, p := range c.Participants() {
					got = append(got, p.ID)
				}
				return assert.ElementsMatch(noT{}, want, got), fmt.Sprintf("want %v, got %v", want, got)
			})
		}
	})

	t.Run("a class begun during the outage gets its origin", func(t *testing.T) {
		for _, n := range nodes {
			waitFor(t, 15*time.Second, "node "+n.name+" lists the class begun during the outage", func() (bool, string) {
				_, origins := clusterView(t, n, op)
				return origins[room2] == "b", fmt.Sprintf("origin %q", origins[room2])
			})
		}
	})

	t.Run("a new student on B receives the video", func(t *testing.T) {
		s2 := b.dial(t, b.token(t, room, auth.RoleStudent, "Student 2"), client.Options{})
		require.Equal(t, b.url, s2.BaseURL())
		receivesVideo(t, s2, teacher.ID(), 20*time.Second)
	})

	t.Run("chat crosses nodes again", func(t *testing.T) {
		require.NoError(t, s1.Chat("back from B"))
		require.Eventually(t, func() bool { return teacher.HasChat("back from B") }, 15*time.Second, 50*time.Millisecond)
		require.NoError(t, teacher.Chat("back from A"))
		require.Eventually(t, func() bool { return s1.HasChat("back from A") }, 15*time.Second, 50*time.Millisecond)
	})

	t.Run("operators see both nodes and the relayed classes on their origins", func(t *testing.T) {
		for _, n := range nodes {
			waitFor(t, 15*time.Second, "node "+n.name+"'s view of the cluster", func() (bool, string) {
				live, origins := clusterView(t, n, op)
				ok := live["a"] == "alive" && live["b"] == "alive" && origins[room] == "a" && origins[back] == "b"
				return ok, fmt.Sprintf("nodes %v, origins of the classes %q and %q", live, origins[room], origins[back])
			})
		}
	})

	t.Run("A stays the only origin", func(t *testing.T) {
		// Past GoneAfter of unbroken announcements, when B could judge A.
		time.Sleep(cluster.DefaultGoneAfter + time.Second)
		for _, n := range nodes {
			e, err := n.app.Cluster().Directory.Lookup(context.Background(), sfu.RoomID(room))
			require.NoError(t, err)
			require.Equal(t, entry.Origin, e.Origin)
			require.Equal(t, entry.Boot, e.Boot)
		}
		require.Same(t, relayed, s1.SubscriptionOf(teacher.ID(), client.LabelCamera), "the first student's stream was never replaced")
		require.Same(t, relayedBack, onA.SubscriptionOf(teacherB.ID(), client.LabelCamera), "nor the student on A's")
		keepsFlowing(t, 3*time.Second, 3*time.Second, relays, nil)
		oneRelayEachWay(t, nodes)
	})
}

// oneRelayEachWay: each node pulls one stream from the other and sends
// one to it.
func oneRelayEachWay(t *testing.T, nodes []*node) {
	t.Helper()
	for _, n := range nodes {
		waitMetric(t, n, "lectern_relays_in", 1)
		waitMetric(t, n, "lectern_relays_out", 1)
	}
}

// TestClusterNATSOutageFirstStudent: while NATS is away, the first
// student of a class joins a node that does not carry the class yet, so
// cannot ask the origin for its video. Once NATS is back the nodes
// resynchronise: the student receives the video and both sides list
// each other.
func TestClusterNATSOutageFirstStudent(t *testing.T) {
	t.Parallel()
	nats := natstest.Start(t)
	nodes := startExternalNodes(t, nats.URL(), "a", "b")
	a, b := nodes[0], nodes[1]
	room := newRoom()
	teacher := a.dial(t, a.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
	publishClip(t, teacher, clipIVF, "")
	require.Eventually(t, teacher.Live, 10*time.Second, 20*time.Millisecond, "teacher live")

	nats.Stop()
	waitFor(t, 10*time.Second, "node b not ready", func() (bool, string) {
		code := readyz(t, b)
		return code == http.StatusServiceUnavailable, fmt.Sprintf("/readyz %d", code)
	})
	student := b.dial(t, b.token(t, room, auth.RoleStudent, "Student"), client.Options{})
	require.Equal(t, b.url, student.BaseURL(), "B serves the student itself while NATS is away")
	time.Sleep(cluster.DefaultGoneAfter + time.Second)
	require.Nil(t, student.SubscriptionOf(teacher.ID(), client.LabelCamera), "no video can come before NATS is back")

	nats.Start()
	back := time.Now()
	receivesVideo(t, student, teacher.ID(), 20*time.Second)
	t.Logf("the student received video %v after NATS listened again", time.Since(back).Round(10*time.Millisecond))
	require.Eventually(t, func() bool {
		_, ok := teacher.Participant(student.ID())
		_, ok2 := student.Participant(teacher.ID())
		return ok && ok2
	}, 10*time.Second, 20*time.Millisecond, "teacher and student list each other")
}

// noT lets assert's comparisons run as plain predicates.
type noT struct{}

func (noT) Errorf(string, ...any) {}
