package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/app"
	"lectern/auth"
	"lectern/client"
	"lectern/config"
)

// node is one Lectern node of a test cluster.
type node struct {
	*server
	name string
	url  string
}

// startCluster runs n nodes in the test process whose embedded NATS
// servers form one NATS cluster through routes; maxStudents[i] is node
// i's --max-students. It returns once every node hears every other.
func startCluster(t *testing.T, maxStudents ...int) []*node {
	t.Helper()
	// The route ports are found free and bound by the nodes a moment
	// later: another test may take one in between, and the node then
	// reports that its NATS server did not start. New ports are tried.
	var apps []*app.App
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if apps, err = startApps(t, maxStudents); err == nil {
			break
		}
		t.Logf("starting the cluster, attempt %d: %v", attempt, err)
	}
	require.NoError(t, err)
	nodes := make([]*node, len(apps))
	for i, a := range apps {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = a.Shutdown(ctx) // a node killed by the test returns its abrupt stop's error
		})
		nodes[i] = nodeOf(a)
	}
	waitClusterFormed(t, nodes, 60*time.Second)
	return nodes
}

// clusterNodeConfig is the configuration of cluster node id in a test.
func clusterNodeConfig(t *testing.T, id string) config.Config {
	cfg := config.Default()
	cfg.HTTP, cfg.UDPPort, cfg.TCPPort, cfg.PublicIP = "127.0.0.1:0", 0, 0, "127.0.0.1"
	cfg.Data, cfg.Auth, cfg.LogLevel = t.TempDir(), "tokens", "warn"
	cfg.Secret = "cluster-test-secret-cluster-test-secret-0123456789"
	cfg.NodeID = id
	return cfg
}

func nodeOf(a *app.App) *node {
	return &node{server: &server{app: a, base: a.BaseURL(), signer: a.Signer()}, name: a.NodeID(), url: a.PublicURL()}
}

// waitClusterFormed waits until every node has joined the control plane
// (within join), hears every other and mirrors the directory.
func waitClusterFormed(t *testing.T, nodes []*node, join time.Duration) {
	t.Helper()
	for _, n := range nodes {
		require.Eventually(t, func() bool { return n.app.Cluster() != nil }, join, 50*time.Millisecond,
			"node %s joins the control plane", n.name)
		require.Eventually(t, func() bool { return len(n.app.Cluster().Registry.Nodes()) == len(nodes) },
			30*time.Second, 50*time.Millisecond, "node %s hears every node", n.name)
		require.Eventually(t, n.app.Cluster().Directory.Synced, 30*time.Second, 50*time.Millisecond)
	}
}

// startApps starts one node per entry of maxStudents, together, with
// each node's embedded NATS server routed to the others'. If any fails to
// start, every node is stopped.
func startApps(t *testing.T, maxStudents []int) ([]*app.App, error) {
	t.Helper()
	ports := make([]int, len(maxStudents))
	var routes []string
	for i := range ports {
		ports[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i]))
	}
	apps := make([]*app.App, len(ports))
	for i := range ports {
		cfg := clusterNodeConfig(t, string(rune('a'+i)))
		cfg.MaxStudents = maxStudents[i]
		cfg.NATSClusterListen = fmt.Sprintf("127.0.0.1:%d", ports[i])
		cfg.NATSRoutes = routes
		require.NoError(t, cfg.Validate())
		a, err := app.New(cfg, testLogger(t))
		require.NoError(t, err)
		apps[i] = a
	}
	// Together: JetStream needs a quorum of the servers before any node
	// can open the directory.
	errs := make(chan error, len(apps))
	for _, a := range apps {
		go func() { errs <- a.Start() }()
	}
	var first error
	for range apps {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		for _, a := range apps {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_ = a.Shutdown(ctx)
			cancel()
		}
		return nil, first
	}
	return apps, nil
}

// kill stops a node at once: no grace for its clients.
func (n *node) kill() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = n.app.Shutdown(ctx)
}

// receivesVideo waits until c gets video of the teacher's camera, more
// packets than it had before.
func receivesVideo(t *testing.T, c *client.Client, teacher string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "video from the teacher", func() (bool, string) {
		s := c.SubscriptionOf(teacher, client.LabelCamera)
		if s == nil {
			return false, "no subscription to the teacher's camera"
		}
		first := s.Video().Packets
		if first < 30 || s.Video().Keyframes == 0 {
			return false, fmt.Sprintf("%d video packets, %d keyframes", first, s.Video().Keyframes)
		}
		return true, ""
	})
}

// getJSON GETs an operator endpoint of base.
func getJSON(t *testing.T, url, token string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

// TestCluster: three nodes, one class. The teacher publishes on A;
// students on B and C get the video through one relay per node; chat and
// participant lists cross nodes; joins on the wrong node are redirected;
// a killed node's student moves to another node and sees video again; a
// full node sends the next student elsewhere.
func TestCluster(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 0, 0, 2)
	a, b, c := nodes[0], nodes[1], nodes[2]
	room := newRoom()

	teacher := a.dial(t, a.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
	publishClip(t, teacher, clipIVF, clipOgg)
	require.Eventually(t, teacher.Live, 10*time.Second, 20*time.Millisecond, "teacher live")
	s1Token := b.token(t, room, auth.RoleStudent, "Student B")
	s1 := b.dial(t, s1Token, client.Options{})
	s2 := c.dial(t, c.token(t, room, auth.RoleStudent, "Student C"), client.Options{})
	require.Equal(t, b.url, s1.BaseURL())
	require.Equal(t, c.url, s2.BaseURL())

	t.Run("students on B and C receive the video", func(t *testing.T) {
		receivesVideo(t, s1, teacher.ID(), 20*time.Second)
		receivesVideo(t, s2, teacher.ID(), 20*time.Second)
		require.True(t, s1.Live())
		// A sends the camera once per edge node, not once per student.
		require.Equal(t, int64(2), a.app.Engine().Stats().Subscribers)
	})

	t.Run("chat and participants cross nodes", func(t *testing.T) {
		require.NoError(t, s2.Chat("hello from C"))
		for _, x := range []*client.Client{s1, teacher, s2} {
			require.Eventually(t, func() bool { return x.HasChat("hello from C") }, 10*time.Second, 20*time.Millisecond)
		}
		require.Eventually(t, func() bool { return len(s1.Participants()) == 3 }, 10*time.Second, 20*time.Millisecond,
			"B lists the whole class: %v", s1.Participants())
		require.NoError(t, s1.Hand(true))
		require.Eventually(t, func() bool {
			p, ok := teacher.Participant(s1.ID())
			return ok && p.Hand
		}, 10*time.Second, 20*time.Millisecond, "a hand on B shows on A")
		require.NoError(t, teacher.LowerHand(s1.ID()))
		require.Eventually(t, func() bool {
			p, ok := s2.Participant(s1.ID())
			return ok && !p.Hand
		}, 10*time.Second, 20*time.Millisecond, "the teacher on A lowers a hand on B")
		w := s1.Welcome()
		require.Equal(t, "b", w.Node)
		require.ElementsMatch(t, []string{a.url, b.url, c.url}, w.Nodes)
	})

	t.Run("a teacher on a non-origin node is redirected", func(t *testing.T) {
		tok := b.token(t, room, auth.RoleTeacher, "Co-teacher")
		co := b.dial(t, tok, client.Options{NoSubscribe: true})
		require.Equal(t, a.url, co.BaseURL(), "redirected to the origin")
		require.NoError(t, co.Close())

		req, err := http.NewRequest(http.MethodPost, b.base+"/whip/"+room, strings.NewReader("v=0\r\n"))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/sdp")
		hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := hc.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
		require.Equal(t, a.url+"/whip/"+room, resp.Header.Get("Location"))
	})

	t.Run("operators see the whole cluster from any node", func(t *testing.T) {
		op := b.token(t, "*", auth.RoleOperator, "Ops")
		for _, n := range nodes {
			var ns struct {
				Nodes []struct {
					ID string `json:"id"`
				} `json:"nodes"`
			}
			require.Equal(t, http.StatusOK, getJSON(t, n.base+"/api/nodes", op, &ns))
			require.Len(t, ns.Nodes, 3)
			var rs struct {
				Rooms []struct {
					Room   string `json:"room"`
					Origin string `json:"origin"`
				} `json:"rooms"`
			}
			require.Equal(t, http.StatusOK, getJSON(t, n.base+"/api/rooms", op, &rs))
			require.Contains(t, rs.Rooms, struct {
				Room   string `json:"room"`
				Origin string `json:"origin"`
			}{room, "a"})
		}
		require.Equal(t, http.StatusUnauthorized, getJSON(t, b.base+"/api/nodes", "", nil))
		require.Equal(t, http.StatusForbidden, getJSON(t, b.base+"/api/rooms", s1Token, nil))
	})

	parent := t
	t.Run("a killed node's student moves and sees video again", func(t *testing.T) {
		nodesOf := s1.Welcome().Nodes
		b.kill()
		<-s1.Done()
		require.Contains(t, nodesOf, c.url)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		moved, err := client.Dial(ctx, c.url, s1Token, client.Options{Logger: clientLogger(t)})
		require.NoError(t, err)
		parent.Cleanup(func() { _ = moved.Close() }) // it stays for the next step
		require.Equal(t, c.url, moved.BaseURL())
		receivesVideo(t, moved, teacher.ID(), 20*time.Second)
	})

	t.Run("a full node redirects the next student", func(t *testing.T) {
		s3 := c.dial(t, c.token(t, room, auth.RoleStudent, "Student 3"), client.Options{})
		require.Equal(t, a.url, s3.BaseURL(), "C is full (2 students) and B is gone; a=%s b=%s c=%s", a.url, b.url, c.url)
		receivesVideo(t, s3, teacher.ID(), 20*time.Second)
	})
}

// TestClusterOriginFailover: the origin dies; the teacher joins another
// node, which takes the class over, and publishes again: a student on a
// third node sees video again within 10 s.
func TestClusterOriginFailover(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 0, 0, 0)
	a, b, c := nodes[0], nodes[1], nodes[2]
	room := newRoom()
	tTok := a.token(t, room, auth.RoleTeacher, "Teacher")
	teacher := a.dial(t, tTok, client.Options{})
	publishClip(t, teacher, clipIVF, clipOgg)
	s := c.dial(t, c.token(t, room, auth.RoleStudent, "Student C"), client.Options{})
	receivesVideo(t, s, teacher.ID(), 20*time.Second)

	a.kill()
	<-teacher.Done()
	again := b.dial(t, tTok, client.Options{})
	require.Equal(t, b.url, again.BaseURL(), "B takes the dead origin's class over")
	start := time.Now()
	publishClip(t, again, clipIVF, clipOgg)
	waitFor(t, 10*time.Second, "video from the new origin", func() (bool, string) {
		sub := s.SubscriptionOf(again.ID(), client.LabelCamera)
		if sub == nil || sub.Created().Before(start) || sub.Video().Keyframes == 0 {
			return false, "no new video yet"
		}
		return true, ""
	})
	var rs struct {
		Rooms []struct {
			Room   string `json:"room"`
			Origin string `json:"origin"`
		} `json:"rooms"`
	}
	op := c.token(t, "*", auth.RoleOperator, "Ops")
	require.Eventually(t, func() bool {
		getJSON(t, c.base+"/api/rooms", op, &rs)
		for _, r := range rs.Rooms {
			if r.Room == room {
				return r.Origin == "b"
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)
}
