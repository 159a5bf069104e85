package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"lectern/internal/natstest"
	"lectern/sfu"
)

// TestStockNATSServer runs the control plane against the nats-server
// Debian ships (2.9.10), in its own process: the oldest server Lectern
// supports, without the newer JetStream features (per-message TTLs,
// 10164 errors) the client library knows about.
func TestStockNATSServer(t *testing.T) {
	t.Parallel()
	p := natstest.Start(t)
	a := startNode(t, connect(t, p.URL()), "a", 0)
	b := startNode(t, connect(t, p.URL()), "b", 0)
	waitAllSeen(t, []*testNode{a, b})

	js, err := jetstream.New(a.nc)
	require.NoError(t, err)
	st, err := js.KeyValue(ctxT(t), DefaultBucket)
	require.NoError(t, err)
	status, err := st.Status(ctxT(t))
	require.NoError(t, err)
	require.Equal(t, 1, status.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas, "a single server gets one replica")
	require.Equal(t, DefaultTTL, status.TTL())

	// Fifty concurrent claims, one origin.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := map[NodeID]int{}
	for i := range 50 {
		n := []*testNode{a, b}[i%2]
		wg.Go(func() {
			e, err := n.node.Directory.Claim(ctxT(t), "stock")
			if err != nil {
				require.ErrorIs(t, err, ErrTaken)
				return
			}
			mu.Lock()
			won[e.Origin]++
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Len(t, won, 1)
	var origin, other *testNode = a, b
	if _, ok := won["b"]; ok {
		origin, other = b, a
	}

	// Release is a compare-and-set delete; a claim after it is a create
	// over the tombstone.
	require.ErrorIs(t, other.node.Directory.Release(ctxT(t), "stock"), ErrNotOwner)
	require.NoError(t, origin.node.Directory.Release(ctxT(t), "stock"))
	e, err := other.node.Directory.Claim(ctxT(t), "stock")
	require.NoError(t, err)
	require.Equal(t, other.id, e.Origin)

	// A stale revision loses.
	_, err = st.Update(ctxT(t), roomToken("stock"), []byte(`{}`), e.Revision-1)
	require.ErrorIs(t, err, jetstream.ErrKeyRevisionMismatch)

	// Takeover after the origin dies.
	other.crash(t)
	require.Eventually(t, func() bool {
		e, err := origin.node.Directory.Claim(ctxT(t), "stock")
		return err == nil && e.Origin == origin.id
	}, 10*time.Second, 50*time.Millisecond)
}

// TestNATSOutage stops the NATS server under two nodes for longer than
// GoneAfter, then starts it again on the same port and store: the nodes
// reconnect by themselves, judge nobody dead meanwhile, keep their
// classes, and the registry, directory and bus work again.
func TestNATSOutage(t *testing.T) {
	t.Parallel()
	p := natstest.Start(t)
	a := startNode(t, connect(t, p.URL()), "a", 0)
	b := startNode(t, connect(t, p.URL()), "b", 0)
	waitAllSeen(t, []*testNode{a, b})
	for _, room := range []sfu.RoomID{"ongoing", "ending"} {
		_, err := a.node.Directory.Claim(ctxT(t), room)
		require.NoError(t, err)
	}
	reconnects := make(chan struct{}, 4)
	require.NoError(t, b.node.Bus.OnReconnect(func() { reconnects <- struct{}{} }))

	p.Stop()
	require.Eventually(t, func() bool { return !a.nc.IsConnected() && !b.nc.IsConnected() },
		5*time.Second, 20*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := b.node.Directory.Claim(ctx, "during")
	cancel()
	require.ErrorIs(t, err, ErrUnavailable)
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = a.node.Directory.Release(ctx, "ending")
	cancel()
	require.ErrorIs(t, err, ErrUnavailable, "a class ends during the outage")
	deadline := time.Now().Add(DefaultGoneAfter + 2*time.Second)
	for time.Now().Before(deadline) {
		require.NotEqual(t, Dead, b.node.Registry.Liveness("a", ""), "a node cut off judges nobody dead")
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, Unknown, b.node.Registry.Liveness("a", ""))
	require.Empty(t, reconnects)

	p.Start()
	require.Eventually(t, func() bool { return a.nc.IsConnected() && b.nc.IsConnected() },
		10*time.Second, 20*time.Millisecond, "the clients reconnect")
	select {
	case <-reconnects:
	case <-time.After(5 * time.Second):
		t.Fatal("OnReconnect was not called")
	}
	require.Eventually(t, func() bool {
		_, ok := b.node.Registry.Node("a")
		return ok && b.node.Registry.Liveness("a", a.node.Registry.Self().Boot) == Alive
	}, 5*time.Second, 20*time.Millisecond, "announcements resume")
	e, err := b.node.Directory.Claim(ctxT(t), "ongoing")
	require.ErrorIs(t, err, ErrTaken, "the class stayed with its origin")
	require.Equal(t, NodeID("a"), e.Origin)
	_, err = b.node.Directory.Claim(ctxT(t), "after")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := b.node.Directory.Lookup(ctxT(t), "ending")
		return errors.Is(err, ErrNoEntry)
	}, 10*time.Second, 50*time.Millisecond, "the release that failed is done once NATS is back")
	require.Eventually(t, func() bool {
		for _, e := range a.node.Directory.Entries() {
			if e.Room == "after" {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "the watcher resumes")

	got := make(chan string, 1)
	sub, err := b.node.Bus.Subscribe("ongoing", func(_ NodeID, ev []byte) { got <- string(ev) })
	require.NoError(t, err)
	defer sub.Close()
	require.NoError(t, b.node.Bus.Flush())
	require.NoError(t, a.node.Bus.Publish("ongoing", []byte("hello again")))
	select {
	case ev := <-got:
		require.Equal(t, "hello again", ev)
	case <-time.After(5 * time.Second):
		t.Fatal("bus event lost after the outage")
	}
}
