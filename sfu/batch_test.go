package sfu

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/ipv4"
)

// listenLoopback opens a UDP socket on 127.0.0.1 with a free port.
func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// gatedWriter records what each batch carried and can hold the sender
// inside WriteBatch until released, so a test controls when sends happen.
type gatedWriter struct {
	entered chan struct{} // receives once per call
	gate    chan struct{} // each call waits for one token (or close)
	mu      sync.Mutex
	got     [][]byte
	batches []int
}

func newGatedWriter() *gatedWriter {
	return &gatedWriter{entered: make(chan struct{}, 1024), gate: make(chan struct{})}
}

func (w *gatedWriter) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	w.entered <- struct{}{}
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range ms {
		w.got = append(w.got, append([]byte(nil), m.Buffers[0]...))
	}
	w.batches = append(w.batches, len(ms))
	return len(ms), nil
}

func (w *gatedWriter) sent() ([][]byte, []int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.got...), append([]int(nil), w.batches...)
}

func seqDatagram(i int) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, uint32(i))
	return b
}

// TestBatchConnDeliversInOrderOverLoopback runs both send paths: x/net's
// WriteBatch and the platform's own (direct sendmmsg(2) on Linux), on a
// v4 socket and on a dual-stack one sending to IPv4 destinations.
func TestBatchConnDeliversInOrderOverLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, network string
		sys, gso      bool
	}{
		{"xnet", "udp4", false, false}, {"sys", "udp4", true, false}, {"sys dual-stack", "udp", true, false},
		{"sys gso", "udp4", true, true}, {"sys gso dual-stack", "udp", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, err := net.ListenUDP(tc.network, &net.UDPAddr{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = src.Close() })
			newWriter := func() batchWriter { return ipv4.NewPacketConn(src) }
			if tc.sys {
				if _, err := newSysBatchWriter(src); err != nil {
					t.Skipf("no direct send path on this platform: %v", err)
				}
				newWriter = func() batchWriter { w, _ := newSysBatchWriter(src); return w }
			}
			if tc.gso && !gsoSupported(src) {
				t.Skip("no UDP GSO on this platform")
			}
			testBatchOrder(t, newBatchConnWith(src, newWriter, 4, tc.gso)) // several shards
		})
	}
}

func testBatchOrder(t *testing.T, c *batchConn) {
	dst1, dst2 := listenLoopback(t), listenLoopback(t)
	t.Cleanup(func() { _ = c.Close() })

	const n = 200
	addrs := []netip.AddrPort{
		dst1.LocalAddr().(*net.UDPAddr).AddrPort(),
		dst2.LocalAddr().(*net.UDPAddr).AddrPort(),
	}
	for i := 0; i < n; i++ {
		switch i {
		case n / 4:
			c.hold() // the middle half during a writer pass
		case 3 * n / 4:
			c.release()
		}
		_, err := c.WriteToAddrPort(seqDatagram(i), addrs[i%2])
		require.NoError(t, err)
	}
	for k, dst := range []*net.UDPConn{dst1, dst2} {
		buf := make([]byte, 64)
		for i := k; i < n; i += 2 {
			m, from, err := dst.ReadFromUDPAddrPort(buf)
			require.NoError(t, err)
			require.Equal(t, 8, m)
			require.Equal(t, uint32(i), binary.BigEndian.Uint32(buf), "destination %d", k)
			require.Equal(t, c.LocalAddr().(*net.UDPAddr).Port, int(from.Port()))
		}
	}
	require.Zero(t, c.Dropped())
}

func TestBatchConnWriteToTakesUDPAddr(t *testing.T) {
	t.Parallel()
	dst := listenLoopback(t)
	c := newBatchConn(listenLoopback(t))
	t.Cleanup(func() { _ = c.Close() })

	n, err := c.WriteTo([]byte("hello"), dst.LocalAddr())
	require.NoError(t, err)
	require.Equal(t, 5, n)
	buf := make([]byte, 64)
	m, _, err := dst.ReadFrom(buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf[:m]))

	_, err = c.WriteTo([]byte("x"), &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
	require.Error(t, err)
}

// TestBatchConnHoldsForAPass: a lone write is sent at once; during a
// writer pass (hold) writes pile up and leave together when it ends, or
// as soon as a full batch is queued.
func TestBatchConnHoldsForAPass(t *testing.T) {
	t.Parallel()
	w := newGatedWriter()
	close(w.gate)
	c := newBatchConnWith(listenLoopback(t), func() batchWriter { return w }, 1, false)
	t.Cleanup(func() { _ = c.Close() })
	to := netip.MustParseAddrPort("127.0.0.1:9")
	write := func(b []byte) {
		_, err := c.WriteToAddrPort(b, to)
		require.NoError(t, err)
	}

	write([]byte("alone"))
	_, batches := w.sent()
	require.Equal(t, []int{1}, batches, "no pass: sent at once")

	c.hold()
	b := []byte("first")
	write(b)
	copy(b, "XXXXX") // the caller may reuse its buffer at once
	for i := 0; i < 10; i++ {
		write(seqDatagram(i))
	}
	_, batches = w.sent()
	require.Len(t, batches, 1, "held until the pass ends")
	c.release()

	c.hold()
	const more = batchMax + 10
	for i := 0; i < more; i++ {
		write(seqDatagram(10 + i))
	}
	_, batches = w.sent()
	require.Equal(t, []int{1, 11, batchMax}, batches, "a full batch leaves at once")
	c.release()

	got, batches := w.sent()
	require.Equal(t, []int{1, 11, batchMax, 10}, batches)
	require.Equal(t, "first", string(got[1]))
	for i := 0; i < 10+more; i++ {
		require.Equal(t, uint32(i), binary.BigEndian.Uint32(got[2+i]))
	}
}

// TestBatchConnWaitsWhenFull: while one goroutine sends (here stuck in
// the kernel), others queue; one that finds more than batchQueueMax
// datagrams queued waits for the sender instead of growing the queue.
func TestBatchConnWaitsWhenFull(t *testing.T) {
	t.Parallel()
	w := newGatedWriter()
	c := newBatchConnWith(listenLoopback(t), func() batchWriter { return w }, 1, false)
	to := netip.MustParseAddrPort("127.0.0.1:9")
	var open sync.Once
	release := func() { open.Do(func() { close(w.gate) }) }
	t.Cleanup(func() { release(); _ = c.Close() }) // a failure must not leave the sender stuck

	write := func(i int, returned *atomic.Bool) {
		_, err := c.WriteToAddrPort(seqDatagram(i), to)
		assert.NoError(t, err)
		returned.Store(true)
	}
	var first, last atomic.Bool
	go write(0, &first)
	<-w.entered // the first writer sends its datagram; the queue is empty
	for i := 1; i <= batchQueueMax; i++ {
		_, err := c.WriteToAddrPort(seqDatagram(i), to)
		require.NoError(t, err)
	}
	go write(batchQueueMax+1, &last)
	require.Never(t, last.Load, 50*time.Millisecond, tick, "a full queue holds the writer")

	release()
	require.Eventually(t, func() bool { return first.Load() && last.Load() }, waitFor, tick)
	got, _ := w.sent()
	require.Len(t, got, batchQueueMax+2, "nothing is dropped")
	for i, b := range got {
		require.Equal(t, uint32(i), binary.BigEndian.Uint32(b))
	}
	require.Zero(t, c.Dropped())
}

func TestBatchConnClose(t *testing.T) {
	t.Parallel()
	dst := listenLoopback(t)
	c := newBatchConn(listenLoopback(t))
	to := dst.LocalAddr().(*net.UDPAddr).AddrPort()

	c.hold() // a writer pass under way: the datagram is only queued
	_, err := c.WriteToAddrPort([]byte("last"), to)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close is idempotent")

	buf := make([]byte, 64)
	m, _, err := dst.ReadFrom(buf)
	require.NoError(t, err)
	require.Equal(t, "last", string(buf[:m]), "a datagram queued before Close still leaves")

	_, err = c.WriteToAddrPort([]byte("late"), to)
	require.ErrorIs(t, err, net.ErrClosed)
	_, _, err = c.ReadFromAddrPort(buf)
	require.ErrorIs(t, err, net.ErrClosed)
}

// TestBatchConnAllocs: queueing and sending a datagram allocate nothing
// once the pool is warm.
func TestBatchConnAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	dst := listenLoopback(t)
	c := newBatchConn(listenLoopback(t))
	t.Cleanup(func() { _ = c.Close() })
	to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	payload := make([]byte, 1200)
	buf := make([]byte, 1500)
	allocs := testing.AllocsPerRun(200, func() {
		_, _ = c.WriteToAddrPort(payload, to)
		_, _, _ = dst.ReadFromUDPAddrPort(buf)
	})
	require.Zero(t, allocs)
}

// TestBatchConnEmptyDatagram: a zero-length datagram is valid UDP; it is
// sent like any other and does not disturb the datagrams around it.
func TestBatchConnEmptyDatagram(t *testing.T) {
	t.Parallel()
	dst := listenLoopback(t)
	c := newBatchConn(listenLoopback(t))
	t.Cleanup(func() { _ = c.Close() })
	to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, b := range [][]byte{[]byte("a"), {}, []byte("b")} {
		_, err := c.WriteToAddrPort(b, to)
		require.NoError(t, err)
	}
	buf := make([]byte, 64)
	for _, want := range []string{"a", "", "b"} {
		n, _, err := dst.ReadFromUDPAddrPort(buf)
		require.NoError(t, err)
		require.Equal(t, want, string(buf[:n]))
	}
	require.Zero(t, c.Dropped())
}

// TestBatchConnGSORuns: with GSO, datagrams of different sizes and
// destinations, queued during a writer pass, reach each destination
// whole and in order: runs of equal size go as one message, a shorter
// datagram ends a run, a longer one starts the next.
func TestBatchConnGSORuns(t *testing.T) {
	t.Parallel()
	src := listenLoopback(t)
	if !gsoSupported(src) {
		t.Skip("no UDP GSO on this platform")
	}
	w, err := newSysBatchWriter(src)
	require.NoError(t, err)
	gw := &countingWriter{w: w}
	c := newBatchConnWith(src, func() batchWriter { return gw }, 1, true)
	t.Cleanup(func() { _ = c.Close() })
	dsts := []*net.UDPConn{listenLoopback(t), listenLoopback(t)}
	c.hold()
	sizes := []int{1200, 1200, 1200, 700, 1200, 1200, 1300, 0, 1300, 1300, 40}
	var want [2][][]byte
	for i := 0; i < 3*len(sizes); i++ {
		k := i % 2
		b := make([]byte, sizes[i%len(sizes)])
		for j := range b {
			b[j] = byte(i + j)
		}
		want[k] = append(want[k], b)
		_, err := c.WriteToAddrPort(b, dsts[k].LocalAddr().(*net.UDPAddr).AddrPort())
		require.NoError(t, err)
	}
	c.release()
	buf := make([]byte, 2000)
	for k, dst := range dsts {
		for i, b := range want[k] {
			require.NoError(t, dst.SetReadDeadline(time.Now().Add(waitFor)))
			n, _, err := dst.ReadFromUDPAddrPort(buf)
			require.NoError(t, err)
			require.Equal(t, b, buf[:n], "destination %d, datagram %d", k, i)
		}
	}
	require.Zero(t, c.Dropped())
	require.Equal(t, int64(3*len(sizes)), gw.segs.Load())
	require.Less(t, gw.msgs.Load(), gw.segs.Load(), "runs went out as GSO messages")
}

// countingWriter counts the messages and datagrams it was asked to send.
type countingWriter struct {
	w          batchWriter
	msgs, segs atomic.Int64
}

func (g *countingWriter) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	n, err := g.w.WriteBatch(ms, flags)
	for _, m := range ms[:max(n, 0)] {
		g.msgs.Add(1)
		g.segs.Add(int64(len(m.Buffers)))
	}
	return n, err
}

// noGSOWriter stands for a device that cannot segment UDP: a message of
// several datagrams fails (EIO, udp(7)); the others pass through.
type noGSOWriter struct{ w batchWriter }

func (g noGSOWriter) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	for i, m := range ms {
		if len(m.Buffers) > 1 {
			if i == 0 {
				return 0, &net.OpError{Op: "sendmmsg", Net: "udp", Err: syscall.EIO}
			}
			ms = ms[:i]
			break
		}
	}
	return g.w.WriteBatch(ms, flags)
}

// TestBatchConnGSOFallback: when a GSO message fails, the shard stops
// using GSO and sends the same datagrams one by one: nothing is lost.
func TestBatchConnGSOFallback(t *testing.T) {
	t.Parallel()
	src := listenLoopback(t)
	gw := &countingWriter{w: noGSOWriter{w: ipv4.NewPacketConn(src)}}
	c := newBatchConnWith(src, func() batchWriter { return gw }, 1, true)
	t.Cleanup(func() { _ = c.Close() })
	dst := listenLoopback(t)
	to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	const n = 20
	c.hold()
	for i := 0; i < n; i++ {
		_, err := c.WriteToAddrPort(seqDatagram(i), to)
		require.NoError(t, err)
	}
	c.release()
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		require.NoError(t, dst.SetReadDeadline(time.Now().Add(waitFor)))
		m, _, err := dst.ReadFromUDPAddrPort(buf)
		require.NoError(t, err)
		require.Equal(t, uint32(i), binary.BigEndian.Uint32(buf[:m]))
	}
	require.Zero(t, c.Dropped())
	require.Equal(t, gw.segs.Load(), gw.msgs.Load(), "every datagram went alone")
}

// TestBatchConnReads: the socket's read (direct recvfrom(2) on Linux)
// returns each datagram with its sender, from IPv4 and IPv6 senders, on
// an IPv4 socket and on a dual-stack one, and honours read deadlines.
func TestBatchConnReads(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, network, bind, from string }{
		{"v4", "udp4", "127.0.0.1", "127.0.0.1"},
		{"dual-stack from v4", "udp", "::", "127.0.0.1"},
		{"v6", "udp6", "::1", "::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.ListenUDP(tc.network, &net.UDPAddr{IP: net.ParseIP(tc.bind)})
			if err != nil && tc.network == "udp6" {
				t.Skipf("no IPv6 loopback here: %v", err)
			}
			require.NoError(t, err)
			c := newBatchConn(conn)
			t.Cleanup(func() { _ = c.Close() })
			sender, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(tc.from)})
			require.NoError(t, err)
			t.Cleanup(func() { _ = sender.Close() })
			to := &net.UDPAddr{IP: net.ParseIP(tc.from), Port: conn.LocalAddr().(*net.UDPAddr).Port}
			buf := make([]byte, 1500)
			for i := 0; i < 3; i++ {
				_, err := sender.WriteTo(seqDatagram(i), to)
				require.NoError(t, err)
				require.NoError(t, c.SetReadDeadline(time.Now().Add(waitFor)))
				n, from, err := c.ReadFromAddrPort(buf)
				require.NoError(t, err)
				require.Equal(t, seqDatagram(i), buf[:n])
				want := sender.LocalAddr().(*net.UDPAddr).AddrPort()
				require.Equal(t, want.Port(), from.Port())
				require.Equal(t, want.Addr().Unmap(), from.Addr().Unmap())
			}
			require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
			_, _, err = c.ReadFromAddrPort(buf)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			_, _, err = c.ReadFromAddrPort(nil)
			require.Error(t, err, "an empty buffer is refused, not a panic")
		})
	}
}

// TestBatchConnReadAllocs: reading a datagram allocates nothing.
func TestBatchConnReadAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	c := newBatchConn(listenLoopback(t))
	t.Cleanup(func() { _ = c.Close() })
	sender := listenLoopback(t)
	to := c.LocalAddr()
	payload, buf := make([]byte, 200), make([]byte, 1500)
	allocs := testing.AllocsPerRun(200, func() {
		_, _ = sender.WriteTo(payload, to)
		_, _, _ = c.ReadFromAddrPort(buf)
	})
	require.Zero(t, allocs)
}

// TestBatchConnSenderLeavesAPassItsDatagrams: while a writer pass is under
// way, a goroutine that finds a full batch sends that batch and leaves
// what was queued meanwhile to the pass, which sends it when it ends.
func TestBatchConnSenderLeavesAPassItsDatagrams(t *testing.T) {
	t.Parallel()
	w := newGatedWriter()
	c := newBatchConnWith(listenLoopback(t), func() batchWriter { return w }, 1, false)
	var open sync.Once
	gate := func() { open.Do(func() { close(w.gate) }) }
	t.Cleanup(func() { gate(); _ = c.Close() })
	to := netip.MustParseAddrPort("127.0.0.1:9")

	c.hold()
	for i := 0; i < batchMax-1; i++ {
		_, err := c.WriteToAddrPort(seqDatagram(i), to)
		require.NoError(t, err)
	}
	var returned atomic.Bool
	go func() { // the write that fills a batch sends it, and waits in the kernel
		_, err := c.WriteToAddrPort(seqDatagram(batchMax-1), to)
		assert.NoError(t, err)
		returned.Store(true)
	}()
	<-w.entered
	for i := batchMax; i < batchMax+10; i++ { // queued meanwhile by the pass
		_, err := c.WriteToAddrPort(seqDatagram(i), to)
		require.NoError(t, err)
	}
	gate()
	require.Eventually(t, returned.Load, waitFor, tick)
	_, batches := w.sent()
	require.Equal(t, []int{batchMax}, batches, "the full batch only")
	c.release()
	got, batches := w.sent()
	require.Equal(t, []int{batchMax, 10}, batches, "the pass sends the rest")
	for i, b := range got {
		require.Equal(t, uint32(i), binary.BigEndian.Uint32(b))
	}
}
