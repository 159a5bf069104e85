package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"lectern/internal/natstest"
	"lectern/sfu"
)

// cutter is a TCP proxy on 127.0.0.1 in front of a NATS server that can
// cut its clients off (every connection closed, new ones refused) and let
// them through again: one node partitioned from NATS while the others
// stay connected.
type cutter struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex // guards cut and conns
	cut   bool
	conns map[net.Conn]struct{}
}

func startCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &cutter{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		c.setCut(true)
		c.wg.Wait()
	})
	return c
}

// connect connects to NATS through the cutter, noticing a cut within two
// seconds and reconnecting every 100 ms.
func (c *cutter) connect(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.url(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2), nats.IgnoreDiscoveredServers())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func (c *cutter) url() string {
	return "nats://127.0.0.1:" + strconv.Itoa(c.ln.Addr().(*net.TCPAddr).Port)
}

func (c *cutter) accept() {
	defer c.wg.Done()
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", c.target)
		if err != nil || !c.track(in, out) {
			_ = in.Close()
			if out != nil {
				_ = out.Close()
			}
			continue
		}
		c.wg.Add(2)
		go c.pipe(in, out)
		go c.pipe(out, in)
	}
}

// track registers a proxied pair; false while cut.
func (c *cutter) track(conns ...net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return false
	}
	for _, x := range conns {
		c.conns[x] = struct{}{}
	}
	return true
}

func (c *cutter) pipe(dst, src net.Conn) {
	defer c.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// setCut cuts the clients off, or lets them through again.
func (c *cutter) setCut(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		for x := range c.conns {
			_ = x.Close()
		}
		c.conns = map[net.Conn]struct{}{}
	}
}

// TestCutOffOriginClaimsAgain: an origin is cut off from NATS alone for
// longer than GoneAfter. The other node, connected all along, judges it
// dead and clears its entries; one of its classes is taken over
// meanwhile. When the origin is back, it claims again the class whose
// entry was cleared (its teacher still publishes there) and leaves the
// one taken over to its new origin.
func TestCutOffOriginClaimsAgain(t *testing.T) {
	t.Parallel()
	s := startSingle(t)
	cut := startCutter(t, s.Addr().String())
	nc := cut.connect(t)
	b := startNode(t, connect(t, s.ClientURL()), "a-janitor", 0) // the lowest id sweeps
	a := startNode(t, nc, "origin", 0)
	waitAllSeen(t, []*testNode{a, b})
	boot := a.node.Registry.Self().Boot
	for _, room := range []sfu.RoomID{"lecture", "moved"} {
		_, err := a.node.Directory.Claim(ctxT(t), room)
		require.NoError(t, err)
	}

	cut.setCut(true)
	require.Eventually(t, func() bool {
		_, err1 := b.node.Directory.Lookup(ctxT(t), "lecture")
		_, err2 := b.node.Directory.Lookup(ctxT(t), "moved")
		return errors.Is(err1, ErrNoEntry) && errors.Is(err2, ErrNoEntry)
	}, 15*time.Second, 50*time.Millisecond, "the cut-off origin is judged dead and its entries cleared")
	_, err := b.node.Directory.Claim(ctxT(t), "moved")
	require.NoError(t, err, "the teacher of one class moved to the other node")

	cut.setCut(false)
	require.Eventually(t, func() bool {
		e, err := b.node.Directory.Lookup(ctxT(t), "lecture")
		return err == nil && e.Origin == "origin" && e.Boot == boot
	}, 10*time.Second, 50*time.Millisecond, "the origin claims its class again")
	e, err := b.node.Directory.Lookup(ctxT(t), "moved")
	require.NoError(t, err)
	require.Equal(t, NodeID("a-janitor"), e.Origin, "a class taken over stays with its new origin")
	require.Eventually(t, func() bool {
		a.node.Directory.mu.Lock()
		defer a.node.Directory.mu.Unlock()
		return !a.node.Directory.owned["moved"] && a.node.Directory.owned["lecture"]
	}, 10*time.Second, 50*time.Millisecond, "the origin no longer counts the class taken over as its own")
}

// TestNATSRestartWithoutStore: the NATS server comes back without its
// store, so without the directory's bucket. The nodes create it again,
// the origin claims its class again, and every mirror follows.
func TestNATSRestartWithoutStore(t *testing.T) {
	t.Parallel()
	p := natstest.Start(t)
	a := startNode(t, connect(t, p.URL()), "a", 0)
	b := startNode(t, connect(t, p.URL()), "b", 0)
	waitAllSeen(t, []*testNode{a, b})
	_, err := a.node.Directory.Claim(ctxT(t), "lecture")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return mirrored(b)["lecture"] == "a" }, 5*time.Second, 20*time.Millisecond)

	p.Stop()
	p.LoseStore()
	p.Start()
	require.Eventually(t, func() bool {
		// A request sent while the client reconnects gets no answer:
		// short attempts.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		e, err := b.node.Directory.Lookup(ctx, "lecture")
		return err == nil && e.Origin == "a"
	}, 20*time.Second, 100*time.Millisecond, "the bucket is back with the origin's class")
	_, err = b.node.Directory.Claim(ctxT(t), "after")
	require.NoError(t, err)
	for _, n := range []*testNode{a, b} {
		require.Eventually(t, func() bool {
			m := mirrored(n)
			return len(m) == 2 && m["lecture"] == "a" && m["after"] == "b"
		}, 10*time.Second, 50*time.Millisecond, "%s mirrors the new bucket: %v", n.id, mirrored(n))
	}
}

// TestPendingReleaseAfterClaimAgain: a class ends while its origin is cut
// off from NATS, so its release is pending; once NATS is back its teacher
// comes again and the class is claimed again before upkeep retries the
// release it listed earlier. That retry must leave the live class alone:
// its entry stays, and it stays this node's claim.
func TestPendingReleaseAfterClaimAgain(t *testing.T) {
	t.Parallel()
	s := startSingle(t)
	cut := startCutter(t, s.Addr().String())
	nc := cut.connect(t)
	a := startNode(t, nc, "origin", 0)
	d := a.node.Directory
	_, err := d.Claim(ctxT(t), "lecture")
	require.NoError(t, err)

	cut.setCut(true)
	require.Eventually(t, func() bool { return !nc.IsConnected() }, 10*time.Second, 20*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = d.Release(ctx, "lecture")
	cancel()
	require.ErrorIs(t, err, ErrUnavailable, "the class ends while NATS is away")
	d.mu.Lock()
	require.True(t, d.releasing["lecture"], "the release is pending")
	d.mu.Unlock()

	cut.setCut(false)
	require.Eventually(t, nc.IsConnected, 10*time.Second, 20*time.Millisecond)
	_, err = d.Claim(ctxT(t), "lecture")
	require.NoError(t, err, "the teacher is back")
	d.retryRelease("lecture") // what upkeep does with a list made before the claim

	e, err := d.Lookup(ctxT(t), "lecture")
	require.NoError(t, err, "the live class keeps its entry")
	require.Equal(t, NodeID("origin"), e.Origin)
	d.mu.Lock()
	defer d.mu.Unlock()
	require.True(t, d.owned["lecture"], "the class is still this node's claim")
	require.False(t, d.releasing["lecture"], "no release is pending")
}

// TestRoomLocks: a class's lock serialises its holders and delays no
// other class; a lock nobody holds or waits for is forgotten.
func TestRoomLocks(t *testing.T) {
	t.Parallel()
	var l roomLocks
	unlockA := l.lock("a")
	unlockB := l.lock("b") // another class: at once
	second := make(chan func())
	go func() { second <- l.lock("a") }()
	select {
	case <-second:
		t.Fatal("a class's lock was taken twice")
	case <-time.After(100 * time.Millisecond):
	}
	unlockA()
	var unlockA2 func()
	select {
	case unlockA2 = <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not get the lock once it was given back")
	}
	unlockA2()
	unlockB()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Empty(t, l.m, "locks nobody holds are forgotten")
}
