package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/config"
	"lectern/sfu"
)

func TestRoomToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		room  sfu.RoomID
		token string
	}{
		{"algebra", "algebra"},
		{"Room_7-b", "Room_7-b"},
		{"a.b", "=" + "YS5i"},
		{"chem 101", "=Y2hlbSAxMDE"},
		{"*", "=Kg"},
		{">", "=Pg"},
		{"élève", "=w6lsw6h2ZQ"},
		{"=x", "=PXg"},
	}
	for _, tt := range tests {
		tok := roomToken(tt.room)
		require.Equal(t, tt.token, tok, tt.room)
		require.NotContains(t, tok, ".")
		back, err := tokenRoom(tok)
		require.NoError(t, err)
		require.Equal(t, tt.room, back)
	}
	for _, bad := range []string{"=%%", "a.b", ""} {
		_, err := tokenRoom(bad)
		require.ErrorIs(t, err, ErrInvalid, bad)
	}
}

// TestNodeIDRuleMatchesConfig keeps config's node id check and this
// package's in step.
func TestNodeIDRuleMatchesConfig(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"a", "web-3-8080", "n_1", "", "a.b", "a b", "a*", "é", strings.Repeat("x", 64), strings.Repeat("x", 65)} {
		require.Equal(t, config.ValidNodeID(id), NodeID(id).Valid(), id)
	}
}

// threeNodes is an embedded three-server NATS cluster with one node on
// each server.
func threeNodes(t *testing.T) []*testNode {
	servers := startCluster(t, 3)
	var nodes []*testNode
	for i, s := range servers {
		nodes = append(nodes, startNode(t, connect(t, s.ClientURL()), NodeID(fmt.Sprintf("node-%d", i+1)), 0))
	}
	return nodes
}

func TestRegistrySeesNodesAndLosesTheDead(t *testing.T) {
	t.Parallel()
	nodes := threeNodes(t)
	all := []NodeID{"node-1", "node-2", "node-3"}
	for _, n := range nodes {
		require.Eventually(t, func() bool {
			return fmt.Sprint(nodeIDs(n.node.Registry.Nodes())) == fmt.Sprint(all)
		}, 5*time.Second, 20*time.Millisecond, "%s sees every node", n.id)
	}
	got, ok := nodes[0].node.Registry.Node("node-2")
	require.True(t, ok)
	require.Equal(t, "http://127.0.0.1:1/node-2", got.URL)
	require.Equal(t, "test", got.Version)
	require.False(t, got.Self)
	nodes[1].load.Store(42)
	require.Eventually(t, func() bool {
		n, _ := nodes[0].node.Registry.Node("node-2")
		return n.Load.Students == 42
	}, 5*time.Second, 20*time.Millisecond, "load travels with the announcements")

	// A crashed node (no goodbye) is gone within GoneAfter of its last
	// announcement.
	crashed := time.Now()
	nodes[2].crash(t)
	require.Eventually(t, func() bool {
		return len(nodes[0].node.Registry.Nodes()) == 2 && len(nodes[1].node.Registry.Nodes()) == 2
	}, 7*time.Second, 20*time.Millisecond)
	require.Less(t, time.Since(crashed), DefaultGoneAfter+DefaultInterval+500*time.Millisecond)
	require.Equal(t, Dead, nodes[0].node.Registry.Liveness("node-3", ""))

	// A node that leaves says so and is gone at once.
	left := time.Now()
	nodes[1].close()
	require.Eventually(t, func() bool { return len(nodes[0].node.Registry.Nodes()) == 1 }, 2*time.Second, 10*time.Millisecond)
	require.Less(t, time.Since(left), time.Second)
}

func TestFiftyConcurrentClaimsMakeOneOrigin(t *testing.T) {
	t.Parallel()
	nodes := threeNodes(t)
	const claims = 50
	type result struct {
		e   Entry
		err error
		by  NodeID
	}
	results := make(chan result, claims)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range claims {
		n := nodes[i%3]
		wg.Go(func() {
			<-start
			e, err := n.node.Directory.Claim(ctxT(t), "algebra")
			results <- result{e, err, n.id}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	winners := map[NodeID]int{}
	var origin Entry
	for r := range results {
		if r.err == nil {
			winners[r.by]++
			require.Equal(t, r.by, r.e.Origin)
		} else {
			require.ErrorIs(t, r.err, ErrTaken)
		}
		if origin.Origin == "" {
			origin = r.e
		}
		require.Equal(t, origin.Origin, r.e.Origin, "every claim sees the same origin")
		require.Equal(t, origin.Boot, r.e.Boot)
	}
	require.Len(t, winners, 1, "exactly one node is the origin")
	e, err := nodes[2].node.Directory.Lookup(ctxT(t), "algebra")
	require.NoError(t, err)
	require.Equal(t, origin.Origin, e.Origin)
}

func TestConcurrentPlacementsAgree(t *testing.T) {
	t.Parallel()
	nodes := threeNodes(t)
	waitAllSeen(t, nodes)
	const places = 50
	entries := make(chan Entry, places)
	var wg sync.WaitGroup
	for i := range places {
		wg.Go(func() {
			e, err := nodes[i%3].node.Directory.Place(ctxT(t), "geometry")
			require.NoError(t, err)
			entries <- e
		})
	}
	wg.Wait()
	close(entries)
	first := <-entries
	for e := range entries {
		require.Equal(t, first.Origin, e.Origin)
		require.Equal(t, first.Revision, e.Revision)
	}
}

// waitAllSeen waits until every node sees every other.
func waitAllSeen(t *testing.T, nodes []*testNode) {
	for _, n := range nodes {
		require.Eventually(t, func() bool { return len(n.node.Registry.Nodes()) == len(nodes) },
			5*time.Second, 20*time.Millisecond)
	}
}

func TestPlacementSpreadsAndPrefersIdleNodes(t *testing.T) {
	t.Parallel()
	nodes := threeNodes(t)
	waitAllSeen(t, nodes)
	// With equal loads, classes spread over every node.
	count := map[NodeID]int{}
	for i := range 30 {
		e, err := nodes[0].node.Directory.Place(ctxT(t), sfu.RoomID(fmt.Sprintf("spread-%d", i)))
		require.NoError(t, err)
		count[e.Origin]++
	}
	require.Len(t, count, 3, "every node gets classes: %v", count)
	for id, c := range count {
		require.GreaterOrEqual(t, c, 5, "%s got %d of 30", id, c)
	}

	// A busy node gets none; a full node (at capacity) neither.
	nodes[0].load.Store(5000)
	nodes[1].load.Store(5000)
	require.Eventually(t, func() bool {
		a, _ := nodes[2].node.Registry.Node("node-1")
		b, _ := nodes[2].node.Registry.Node("node-2")
		return a.Load.Students == 5000 && b.Load.Students == 5000
	}, 5*time.Second, 20*time.Millisecond)
	e, err := nodes[2].node.Directory.Place(ctxT(t), "quiet")
	require.NoError(t, err)
	require.Equal(t, NodeID("node-3"), e.Origin)

	again, err := nodes[0].node.Directory.Place(ctxT(t), "quiet")
	require.NoError(t, err)
	require.Equal(t, e.Origin, again.Origin, "a placed class stays where it is")
	require.Equal(t, e.Revision, again.Revision)
}

func TestPlaceSkipsFullNodes(t *testing.T) {
	t.Parallel()
	s := startSingle(t)
	a := startNode(t, connect(t, s.ClientURL()), "a", 10)
	b := startNode(t, connect(t, s.ClientURL()), "b", 10)
	a.load.Store(10)
	b.load.Store(10)
	waitAllSeen(t, []*testNode{a, b})
	require.Eventually(t, func() bool {
		n, _ := a.node.Registry.Node("b")
		return n.Full() && a.node.Registry.Self().Load.Students == 10
	}, 5*time.Second, 20*time.Millisecond)
	_, err := a.node.Directory.Place(ctxT(t), "nowhere")
	require.ErrorIs(t, err, ErrNoNode)
	b.load.Store(3)
	require.Eventually(t, func() bool {
		e, err := a.node.Directory.Place(ctxT(t), "somewhere")
		return err == nil && e.Origin == "b"
	}, 5*time.Second, 50*time.Millisecond)
}

func TestTakeoverAfterOriginDeath(t *testing.T) {
	t.Parallel()
	nodes := threeNodes(t)
	waitAllSeen(t, nodes)
	a, b := nodes[0], nodes[1]
	mine, err := a.node.Directory.Claim(ctxT(t), "physics")
	require.NoError(t, err)
	e, err := b.node.Directory.Claim(ctxT(t), "physics")
	require.ErrorIs(t, err, ErrTaken, "a live origin keeps its class")
	require.Equal(t, mine.Origin, e.Origin)

	a.crash(t)
	require.Eventually(t, func() bool {
		e, err := b.node.Directory.Claim(ctxT(t), "physics")
		if errors.Is(err, ErrTaken) {
			return false
		}
		require.NoError(t, err)
		require.Equal(t, NodeID("node-2"), e.Origin)
		require.Greater(t, e.Revision, mine.Revision)
		return true
	}, 8*time.Second, 50*time.Millisecond, "the class is taken over once its origin is dead")
}

func TestRestartedNodeLosesItsClaims(t *testing.T) {
	t.Parallel()
	s := startSingle(t)
	a := startNode(t, connect(t, s.ClientURL()), "a", 0)
	b := startNode(t, connect(t, s.ClientURL()), "b", 0)
	waitAllSeen(t, []*testNode{a, b})
	_, err := a.node.Directory.Claim(ctxT(t), "history")
	require.NoError(t, err)
	a.crash(t)
	// a comes back under the same id, with a new boot, at once: its old
	// claim is dead even though "a" is alive.
	a2 := startNode(t, connect(t, s.ClientURL()), "a", 0)
	require.Eventually(t, func() bool {
		n, ok := b.node.Registry.Node("a")
		return ok && n.Boot == a2.node.Registry.Self().Boot
	}, 5*time.Second, 20*time.Millisecond)
	e, err := b.node.Directory.Claim(ctxT(t), "history")
	require.NoError(t, err)
	require.Equal(t, NodeID("b"), e.Origin)
}

func TestRelease(t *testing.T) {
	t.Parallel()
	s := startSingle(t)
	a := startNode(t, connect(t, s.ClientURL()), "a", 0)
	b := startNode(t, connect(t, s.ClientURL()), "b", 0)
	_, err := a.node.Directory.Claim(ctxT(t), "music")
	require.NoError(t, err)
	require.ErrorIs(t, b.node.Directory.Release(ctxT(t), "music"), ErrNotOwner)
	require.NoError(t, a.node.Directory.Release(ctxT(t), "music"))
	_, err = b.node.Directory.Lookup(ctxT(t), "music")
	require.ErrorIs(t, err, ErrNoEntry)
	require.NoError(t, a.node.Directory.Release(ctxT(t), "music"), "releasing a class with no entry is fine")
	e, err := b.node.Directory.Claim(ctxT(t), "music")
	require.NoError(t, err, "a released class can be claimed again")
	require.Equal(t, NodeID("b"), e.Origin)
	_, err = a.node.Directory.Claim(ctxT(t), "")
	require.ErrorIs(t, err, ErrInvalid)
}

func TestSweepClearsDeadOrigins(t *testing.T) {
	t.Parallel()
	nodes := threeNodes(t)
	waitAllSeen(t, nodes)
	a := nodes[2] // node-3: not the janitor (the lowest live id)
	for _, room := range []sfu.RoomID{"r1", "r2", "weird room.1"} {
		_, err := a.node.Directory.Claim(ctxT(t), room)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return len(nodes[0].node.Directory.Entries()) == 3 },
		5*time.Second, 20*time.Millisecond, "the watcher mirrors the bucket")
	var changes sync.Map
	stop := nodes[1].node.Directory.Watch(func(c Change) {
		if c.Deleted {
			changes.Store(c.Entry.Room, true)
		}
	})
	defer stop()

	a.crash(t)
	require.Eventually(t, func() bool {
		return len(nodes[0].node.Directory.Entries()) == 0 && len(nodes[1].node.Directory.Entries()) == 0
	}, 10*time.Second, 50*time.Millisecond, "entries of a dead origin are cleared")
	for _, room := range []sfu.RoomID{"r1", "r2", "weird room.1"} {
		_, err := nodes[0].node.Directory.Lookup(ctxT(t), room)
		require.ErrorIs(t, err, ErrNoEntry)
		_, ok := changes.Load(room)
		require.True(t, ok, "watchers hear of %q", room)
	}
}

func TestBusEventsCrossNodes(t *testing.T) {
	t.Parallel()
	nodes := threeNodes(t)
	type got struct {
		at, from NodeID
		data     string
	}
	events := make(chan got, 16)
	for _, n := range nodes {
		sub, err := n.node.Bus.Subscribe("chem lab.1", func(from NodeID, ev []byte) {
			if string(ev) != "probe" { // waitInterest's
				events <- got{n.id, from, string(ev)}
			}
		})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, sub.Close()) })
	}
	other, err := nodes[1].node.Bus.Subscribe("other", func(NodeID, []byte) { events <- got{data: "wrong room"} })
	require.NoError(t, err)
	// Subscriptions travel between the servers of the cluster: wait for
	// node-1's server to know them, by round trips through every node.
	waitInterest(t, nodes, "chem lab.1")

	require.NoError(t, nodes[0].node.Bus.Publish("chem lab.1", []byte(`{"type":"chat"}`)))
	seen := map[NodeID]got{}
	for range 2 {
		select {
		case g := <-events:
			seen[g.at] = g
		case <-time.After(5 * time.Second):
			t.Fatal("event not delivered")
		}
	}
	require.Equal(t, got{"node-2", "node-1", `{"type":"chat"}`}, seen["node-2"])
	require.Equal(t, got{"node-3", "node-1", `{"type":"chat"}`}, seen["node-3"])
	require.NoError(t, other.Close())
	require.NoError(t, other.Close(), "closing twice is harmless")
	// The publisher never hears its own event, nor another class its.
	require.NoError(t, nodes[0].node.Bus.Flush())
	select {
	case g := <-events:
		t.Fatalf("unexpected event %+v", g)
	case <-time.After(200 * time.Millisecond):
	}
	require.ErrorIs(t, nodes[0].node.Bus.Publish("", nil), ErrInvalid)
}

// waitInterest publishes probes until every node's subscription to room
// receives from node-1, so later deliveries do not race the propagation
// of interest between servers.
func waitInterest(t *testing.T, nodes []*testNode, room sfu.RoomID) {
	probe := eventsSubject(room)
	for _, n := range nodes[1:] {
		sub, err := n.nc.SubscribeSync(probe)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			require.NoError(t, nodes[0].nc.Publish(probe, []byte("probe")))
			_, err := sub.NextMsg(50 * time.Millisecond)
			return err == nil
		}, 5*time.Second, 10*time.Millisecond)
		require.NoError(t, sub.Unsubscribe())
	}
}

func TestRelayRequestReply(t *testing.T) {
	t.Parallel()
	nodes := threeNodes(t)
	origin, edge := nodes[2], nodes[0]
	require.NoError(t, origin.node.Bus.HandleRelay(func(ctx context.Context, req RelayRequest) ([]byte, error) {
		switch req.Room {
		case "taught-here":
			return append([]byte("answer to "+string(req.From)+": "), req.Offer...), nil
		case "slow":
			<-ctx.Done()
			return nil, ctx.Err()
		case "broken":
			return nil, errors.New("no such track")
		default:
			return nil, ErrNotOrigin
		}
	}))
	require.ErrorIs(t, origin.node.Bus.HandleRelay(nil), ErrInvalid, "one handler per node")
	require.Eventually(t, func() bool {
		_, err := edge.node.Bus.RequestRelay(ctxT(t), "node-3", "taught-here", []byte("offer"))
		return err == nil
	}, 5*time.Second, 20*time.Millisecond, "the relay subject's interest reaches every server")

	answer, err := edge.node.Bus.RequestRelay(ctxT(t), "node-3", "taught-here", []byte("v=0 offer"))
	require.NoError(t, err)
	require.Equal(t, "answer to node-1: v=0 offer", string(answer))

	_, err = edge.node.Bus.RequestRelay(ctxT(t), "node-3", "elsewhere", []byte("o"))
	require.ErrorIs(t, err, ErrNotOrigin)
	var remote *RemoteError
	require.ErrorAs(t, err, &remote)
	require.Equal(t, NodeID("node-3"), remote.Node)

	_, err = edge.node.Bus.RequestRelay(ctxT(t), "node-3", "broken", []byte("o"))
	require.ErrorIs(t, err, ErrRelayFailed)
	require.ErrorContains(t, err, "no such track")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = edge.node.Bus.RequestRelay(ctx, "node-3", "slow", []byte("o"))
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	_, err = edge.node.Bus.RequestRelay(ctxT(t), "node-2", "taught-here", []byte("o"))
	require.ErrorIs(t, err, ErrNodeUnreachable, "node-2 handles no relays")
	_, err = edge.node.Bus.RequestRelay(ctxT(t), "no.such", "r", nil)
	require.ErrorIs(t, err, ErrInvalid)
}

func TestRelayBusy(t *testing.T) {
	t.Parallel()
	s := startSingle(t)
	a := startNode(t, connect(t, s.ClientURL()), "a", 0)
	b := startNode(t, connect(t, s.ClientURL()), "b", 0)
	bus, err := NewBus(BusOptions{Conn: b.nc, Self: "b2", MaxRelays: 1})
	require.NoError(t, err)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	require.NoError(t, bus.HandleRelay(func(ctx context.Context, _ RelayRequest) ([]byte, error) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return []byte("ok"), nil
	}))
	require.NoError(t, bus.Flush(), "the relay subscription is in place")
	done := make(chan error, 1)
	go func() {
		_, err := a.node.Bus.RequestRelay(ctxT(t), "b2", "r", nil)
		done <- err
	}()
	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("relay ended before the handler ran: %v", err)
	}
	_, err = a.node.Bus.RequestRelay(ctxT(t), "b2", "r", nil)
	require.ErrorIs(t, err, ErrBusy)
	close(release)
	require.NoError(t, <-done)
	require.NoError(t, bus.Close())
	require.NoError(t, bus.Close())
	require.ErrorIs(t, bus.HandleRelay(nil), ErrClosed)
	_, err = bus.Subscribe("r", nil)
	require.ErrorIs(t, err, ErrClosed)
}

func TestDirectoryWithoutMirror(t *testing.T) {
	t.Parallel()
	s := startSingle(t)
	a := startNode(t, connect(t, s.ClientURL()), "a", 0)
	nc := connect(t, s.ClientURL())
	d, err := NewDirectory(ctxT(t), DirectoryOptions{Conn: nc, Registry: a.node.Registry, NoMirror: true})
	require.NoError(t, err)
	e, err := d.Place(ctxT(t), "lean")
	require.NoError(t, err)
	require.Equal(t, NodeID("a"), e.Origin)
	require.Empty(t, d.Entries())
	require.False(t, d.Synced())
	require.NoError(t, d.Close())
}
