package cluster

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serverOpts is one embedded test server on 127.0.0.1 and free ports.
func serverOpts(t *testing.T, name string) *server.Options {
	return &server.Options{
		ServerName: name, Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
	}
}

func runServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second), "server %s did not start", opts.ServerName)
	return s
}

func shutdown(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// startSingle runs one embedded JetStream server, stopped at cleanup.
func startSingle(t *testing.T) *server.Server {
	s := runServer(t, serverOpts(t, "single"))
	t.Cleanup(func() { shutdown(s) })
	return s
}

// startCluster runs n embedded servers routed into one NATS cluster with
// clustered JetStream, and waits for the JetStream meta leader. Every
// server gets the same route list, itself included (nats-server drops a
// route to itself): clustered JetStream refuses to start without routes.
func startCluster(t *testing.T, n int) []*server.Server {
	t.Helper()
	ports := make([]int, n)
	var routes []string
	for i := range ports {
		ports[i] = freePort(t)
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	var servers []*server.Server
	for i := range n {
		opts := serverOpts(t, fmt.Sprintf("s%d", i+1))
		opts.Cluster = server.ClusterOpts{Name: "lectern-test", Host: "127.0.0.1", Port: ports[i]}
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		s := runServer(t, opts)
		t.Cleanup(func() { shutdown(s) })
		servers = append(servers, s)
	}
	require.Eventually(t, func() bool {
		leaders := 0
		for _, s := range servers {
			if s.NumRoutes() < n-1 || !s.JetStreamIsCurrent() {
				return false
			}
			if s.JetStreamIsLeader() {
				leaders++
			}
		}
		return leaders == 1
	}, 30*time.Second, 50*time.Millisecond, "no JetStream meta leader")
	return servers
}

// connect opens a client connection to url that reconnects forever.
func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// freePort is a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// testNode is one node's control plane in a test.
type testNode struct {
	id    NodeID
	nc    *nats.Conn
	load  atomic.Int64 // students
	node  *Node
	cfg   Options
	close func()
}

// startNode starts a Node named id on nc with fast-enough test defaults;
// it is closed at cleanup.
func startNode(t *testing.T, nc *nats.Conn, id NodeID, capacity int) *testNode {
	t.Helper()
	tn := &testNode{id: id, nc: nc}
	tn.cfg = Options{
		Conn:      nc,
		Self:      NodeInfo{ID: id, URL: "http://127.0.0.1:1/" + string(id), MediaAddr: "127.0.0.1:1", Capacity: capacity, Version: "test"},
		Load:      func() Load { return Load{Students: int(tn.load.Load())} },
		Directory: DirectoryOptions{Sweep: 200 * time.Millisecond},
		Logger:    zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, tn.cfg)
	require.NoError(t, err)
	tn.node = n
	closed := false
	tn.close = func() {
		if !closed {
			closed = true
			require.NoError(t, n.Close())
		}
	}
	t.Cleanup(tn.close)
	return tn
}

// crash stops the node the way a killed process stops: its NATS
// connection drops, no goodbye is said.
func (tn *testNode) crash(t *testing.T) {
	tn.nc.Close()
	tn.close()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// nodeIDs lists the ids of nodes.
func nodeIDs(nodes []NodeStatus) []NodeID {
	out := make([]NodeID, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}
