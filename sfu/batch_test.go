package sfu

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
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

// gatedWriter records what each batch carried and can hold the flusher
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
		sys           bool
	}{
		{"xnet", "udp4", false}, {"sys", "udp4", true}, {"sys dual-stack", "udp", true},
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
			testBatchOrder(t, newBatchConnWith(src, newWriter, 4)) // several flushers
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

func TestBatchConnCopiesAndBatches(t *testing.T) {
	t.Parallel()
	w := newGatedWriter()
	c := newBatchConnWith(listenLoopback(t), func() batchWriter { return w }, 1)
	t.Cleanup(func() { close(w.gate); _ = c.Close() })
	to := netip.MustParseAddrPort("127.0.0.1:9")

	// The first datagram wakes the flusher, which then waits in the gate:
	// everything written meanwhile piles up and leaves in batches.
	b := []byte("first")
	_, err := c.WriteToAddrPort(b, to)
	require.NoError(t, err)
	copy(b, "XXXXX") // the caller may reuse its buffer at once
	<-w.entered
	const more = batchMax + 10
	for i := 0; i < more; i++ {
		_, err := c.WriteToAddrPort(seqDatagram(i), to)
		require.NoError(t, err)
	}
	w.gate <- struct{}{} // first batch
	<-w.entered
	w.gate <- struct{}{} // batchMax of the rest
	<-w.entered
	w.gate <- struct{}{} // the last 10

	require.Eventually(t, func() bool {
		got, _ := w.sent()
		return len(got) == 1+more
	}, waitFor, tick)
	got, batches := w.sent()
	require.Equal(t, "first", string(got[0]))
	for i := 0; i < more; i++ {
		require.Equal(t, uint32(i), binary.BigEndian.Uint32(got[1+i]))
	}
	require.Equal(t, []int{1, batchMax, 10}, batches)
}

func TestBatchConnWaitsWhenFull(t *testing.T) {
	t.Parallel()
	w := newGatedWriter()
	c := newBatchConnWith(listenLoopback(t), func() batchWriter { return w }, 1)
	to := netip.MustParseAddrPort("127.0.0.1:9")
	var open sync.Once
	release := func() { open.Do(func() { close(w.gate) }) }
	t.Cleanup(func() { release(); _ = c.Close() }) // a failure must not leave the flusher stuck

	_, err := c.WriteToAddrPort(seqDatagram(0), to)
	require.NoError(t, err)
	<-w.entered // the flusher holds the first datagram; the queue is empty
	for i := 1; i <= batchQueueMax; i++ {
		_, err := c.WriteToAddrPort(seqDatagram(i), to)
		require.NoError(t, err)
	}
	var returned atomic.Bool
	go func() {
		_, err := c.WriteToAddrPort(seqDatagram(batchQueueMax+1), to)
		assert.NoError(t, err)
		returned.Store(true)
	}()
	require.Never(t, returned.Load, 50*time.Millisecond, tick, "a full queue holds the writer")

	release()
	require.Eventually(t, returned.Load, waitFor, tick)
	require.NoError(t, c.Close())
	got, _ := w.sent()
	require.Len(t, got, batchQueueMax+2, "nothing is dropped; Close sends what was queued")
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
// once the pool is warm. Each run waits for its datagram to arrive, so the
// flusher has returned the buffer before the next write takes one.
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
