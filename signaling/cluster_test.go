package signaling

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/cluster"
	"lectern/sfu"
)

// startNATS runs an embedded JetStream server on 127.0.0.1, stopped at
// cleanup.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		ServerName: "signaling-test", Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
	})
	require.NoError(t, err)
	ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second), "NATS did not start")
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// nodeURL is the base URL node id announces: never dialled, its origin
// tells the nodes apart.
func nodeURL(id cluster.NodeID) string { return "http://" + string(id) + ".lectern.test:8080/" }

// startClusterNode starts the control plane of node id on its own NATS
// connection. Both are closed at cleanup; nc is returned for a crash.
func startClusterNode(t *testing.T, ns *server.Server, id cluster.NodeID) (*cluster.Node, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cluster.Options{
		Conn:   nc,
		Self:   cluster.NodeInfo{ID: id, URL: nodeURL(id), MediaAddr: "127.0.0.1:1", Version: "test"},
		Load:   func() cluster.Load { return cluster.Load{} },
		Logger: zerolog.Nop(),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		err := n.Close()
		if !nc.IsClosed() { // a crashed node's goodbye fails
			require.NoError(t, err)
		}
	})
	return n, nc
}

// newClusterEnv serves a server that is node n of a cluster; it is shut
// down before the node closes.
func newClusterEnv(t *testing.T, n *cluster.Node) *testEnv {
	t.Helper()
	signer, err := auth.NewSigner([]byte(testSecret))
	require.NoError(t, err)
	srv, err := New(Options{
		Signer: signer, AuthMode: AuthOpen, Logger: zerolog.Nop(),
		Registry: prometheus.NewRegistry(), Web: testWeb(), Cluster: n,
	})
	require.NoError(t, err)
	env := newEnvFor(t, srv, signer)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		env.http.Close()
	})
	return env
}

// origin is the node holding class id in the directory, "" when none.
func origin(t *testing.T, n *cluster.Node, id sfu.RoomID) cluster.NodeID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := n.Directory.Lookup(ctx, id)
	if errors.Is(err, cluster.ErrNoEntry) {
		return ""
	}
	require.NoError(t, err)
	return e.Origin
}

// TestClaimAfterOutageNeedsTeacher: after a NATS outage, a node claims
// the classes open here with their teacher, and no other: not a class
// that ended here, nor one whose students only are here.
func TestClaimAfterOutageNeedsTeacher(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	node, _ := startClusterNode(t, ns, "a")
	env := newClusterEnv(t, node)
	env.join(env.token("lecture", auth.RoleTeacher, "t1", "Tess"))
	env.join(env.token("study", auth.RoleStudent, "s1", "Sam"))
	// The directory lost the entry of the class whose teacher is here.
	require.NoError(t, node.Directory.Release(context.Background(), "lecture"))
	cases := []struct {
		room sfu.RoomID
		want cluster.NodeID
	}{
		{"lecture", "a"}, // its teacher is here
		{"study", ""},    // students only
		{"ended", ""},    // not open here
	}
	for _, tc := range cases {
		env.srv.link().claimAfterOutage(tc.room)
		require.Equal(t, tc.want, origin(t, node, tc.room), tc.room)
	}
}

// TestClaimAfterOutageTeacherLeaves: after a NATS outage, the class of a
// teacher here has the entry of a node this one cannot judge yet (it has
// just reconnected), so the claim is retried; the teacher leaves
// meanwhile and the class ends. The retries stop: the class ended is
// never claimed, even once the other node is known to be dead.
func TestClaimAfterOutageTeacherLeaves(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	ghost, ghostNC := startClusterNode(t, ns, "b")
	_, err := ghost.Directory.Claim(context.Background(), "lecture")
	require.NoError(t, err)
	boot := ghost.Registry.Self().Boot
	ghostNC.Close() // b dies without a word, its entry left behind

	node, _ := startClusterNode(t, ns, "a")
	env := newClusterEnv(t, node)
	teacher, _ := env.join(env.token("lecture", auth.RoleTeacher, "t1", "Tess"))
	require.Equal(t, cluster.Unknown, node.Registry.Liveness("b", boot),
		"a node that has just started judges nobody: the claim is retried")
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.srv.link().claimAfterOutage("lecture")
	}()
	teacher.send(typeLeave, "", nil)
	require.Eventually(t, func() bool { return env.srv.hub.lookup("lecture") == nil },
		waitFor, 10*time.Millisecond, "the class ends")
	select {
	case <-done:
	case <-time.After(outageClaimGoneAfters*node.Directory.GoneAfter() + 10*time.Second):
		t.Fatal("the claim after the outage never stopped")
	}
	require.NotEqual(t, cluster.NodeID("a"), origin(t, node, "lecture"), "the class that ended is not claimed")
}

// TestCheckOriginLiveNodePastBound: the websocket Origin check accepts
// the page of a live node even once maxNodeOrigins origins are
// remembered, and refuses other pages.
func TestCheckOriginLiveNodePastBound(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	node, _ := startClusterNode(t, ns, "a")
	env := newClusterEnv(t, node)
	var many []cluster.NodeStatus
	for i := range maxNodeOrigins {
		many = append(many, cluster.NodeStatus{NodeInfo: cluster.NodeInfo{URL: fmt.Sprintf("http://n%d.lectern.test", i)}})
	}
	env.srv.link().origins.remember(many)
	startClusterNode(t, ns, "late")
	require.Eventually(t, func() bool { _, ok := node.Registry.Node("late"); return ok },
		10*time.Second, 20*time.Millisecond, "the node that starts late is heard of")
	cases := []struct {
		origin string
		want   bool
	}{
		{"http://late.lectern.test:8080", true}, // live, past the bound
		{"http://n7.lectern.test", true},        // remembered
		{"http://evil.lectern.test:8080", false},
		{"null", false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodGet, "http://a.lectern.test:8080/ws", nil)
		r.Header.Set("Origin", tc.origin)
		require.Equal(t, tc.want, env.srv.checkOrigin(r), tc.origin)
	}
}
