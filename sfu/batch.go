package sfu

// Lock order: batchShard.sendMu -> batchShard.mu. mu is a leaf held only
// to append to the queue or swap it out; sendMu is held while one
// goroutine sends a shard's queue, so a destination's datagrams leave in
// order. No system call is made under mu.

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

const (
	// batchMax is how many datagrams one sendmmsg(2) call carries. The
	// kernel caps a call at UIO_MAXIOV (1024); 64 already amortises the
	// system call entry over a whole fan-out step of a large class.
	batchMax = 64
	// batchQueueMax bounds the datagrams (and so the buffer memory) a
	// shard's queue holds while one goroutine sends. A writer that finds
	// more waits for the sender, as it would in sendto(2) on a blocking
	// socket whose send buffer is full (socket(7), SO_SNDBUF). Dropping
	// here instead was measured to lose 3-4% of the packets of a
	// 100-student join burst (the primed GOPs outrun the kernel): random
	// datagram loss costs NACKs and PLIs, while a writer that waits lets
	// its own down track queue fill and drop by policy (video skips to the
	// next keyframe).
	batchQueueMax = 128
	// maxShards caps the send queues (one per core) of a socket.
	maxShards = 8
	// datagramCap is the buffer a queued datagram starts with: pion never
	// sends more than its MTU (1200 bytes by default); a larger datagram
	// grows its buffer.
	datagramCap = 1500
	// gsoMaxSegments caps the datagrams of one GSO message (the kernel
	// takes up to UDP_MAX_SEGMENTS, 64 or more); a video frame to one
	// student is rarely longer.
	gsoMaxSegments = 32
	// gsoMaxBytes keeps a GSO message under the 64 KB of one IP packet.
	gsoMaxBytes = 60000
	// gsoControlLen is room for one control message with a 2-byte value
	// (CMSG_SPACE(2) is 24 on 64-bit Linux).
	gsoControlLen = 32
	// closeFlushTimeout bounds the last sends on Close, so a socket that
	// cannot send does not hold the engine's shutdown.
	closeFlushTimeout = 100 * time.Millisecond
)

// datagram is one queued UDP payload and its destination.
type datagram struct {
	buf  []byte
	addr netip.AddrPort
}

// batchWriter is the sendmmsg(2) side of x/net's ipv4 and ipv6 packet
// connections.
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// batchConn wraps the shared ICE UDP socket so that the many writers of
// a class no longer make one sendto(2) each per packet. WriteTo copies the
// datagram into a pooled buffer and queues it; whoever sends then takes
// the whole queue and sends it with sendmmsg(2), up to batchMax messages
// per call. There is no timer and no goroutine of its own:
//
//   - the writer shards (writers.go) hold the socket while they write a
//     pass of down tracks (hold), and send what piled up once at its end
//     (release): a fan-out step of a class leaves in a few calls, and no
//     goroutine is woken to send it;
//   - any other writer (pion's RTCP, DTLS and ICE traffic) sends at once,
//     on its own goroutine, unless a pass is under way, which then sends
//     it;
//   - whoever finds batchMax datagrams queued sends them at once.
//
// Where the kernel offers UDP GSO (udp(7), UDP_SEGMENT), the sender
// groups what it took by destination and sends each run of equal-size
// datagrams to one student (the packets of a frame) as one message, which
// the kernel or the NIC cuts back into datagrams: the IP layer's work is
// done once per run instead of once per datagram.
// The queue is split in one shard per core, so both cores can send at
// once, and a destination always maps to the same shard, so each receiver
// still gets its datagrams in order.
//
// It implements ice.AddrPortReaderWriter so pion's UDP mux keeps its
// allocation-free netip.AddrPort path.
type batchConn struct {
	conn   *net.UDPConn
	reader addrPortReader // the socket itself, or a direct one (Linux)
	shards []*batchShard
	pool   sync.Pool
	held   atomic.Int32 // writer passes under way (hold)
	// tap, set before the first read, sees every datagram read and takes
	// those it returns true for. Only the socket's one reader calls it.
	tap      func(b []byte, from netip.AddrPort) bool
	once     sync.Once
	closeErr error
}

// batchShard is one send queue.
type batchShard struct {
	pool    *sync.Pool
	dropped atomic.Uint64 // datagrams the kernel refused

	// sendMu is held by the goroutine sending the queue; the fields
	// below it are that goroutine's.
	sendMu sync.Mutex
	batch  batchWriter
	bufs   *batchBufs
	spare  []*datagram
	gso    bool // send runs as one message

	mu     sync.Mutex
	queue  []*datagram
	closed bool
}

// newBatchConn wraps conn. On Linux each shard calls
// sendmmsg(2) itself (batch_linux.go); elsewhere x/net's WriteBatch does.
func newBatchConn(conn *net.UDPConn) *batchConn {
	n := min(max(runtime.GOMAXPROCS(0), 1), maxShards)
	if _, err := newSysBatchWriter(conn); err == nil {
		return newBatchConnWith(conn, func() batchWriter {
			w, _ := newSysBatchWriter(conn)
			return w
		}, n, gsoSupported(conn))
	}
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		// A dual-stack socket bound to :: still takes IPv4 destinations:
		// Linux hands an AF_INET address on an AF_INET6 socket to the
		// IPv4 path (udpv6_sendmsg).
		v6 := batchV6{ipv6.NewPacketConn(conn)}
		return newBatchConnWith(conn, func() batchWriter { return v6 }, n, false)
	}
	v4 := ipv4.NewPacketConn(conn)
	return newBatchConnWith(conn, func() batchWriter { return v4 }, n, false)
}

// newBatchConnWith makes n shards for conn, each sending through its own
// writer from newWriter.
func newBatchConnWith(conn *net.UDPConn, newWriter func() batchWriter, n int, gso bool) *batchConn {
	c := &batchConn{conn: conn, reader: newReader(conn)}
	c.pool.New = func() any { return &datagram{buf: make([]byte, 0, datagramCap)} }
	for range n {
		c.shards = append(c.shards, &batchShard{
			batch: newWriter(),
			gso:   gso,
			pool:  &c.pool,
			bufs:  &batchBufs{},
			queue: make([]*datagram, 0, batchMax),
			spare: make([]*datagram, 0, batchMax),
		})
	}
	return c
}

// shard picks the destination's shard: the same one for every datagram to
// addr, so per-destination order is kept.
func (c *batchConn) shard(addr netip.AddrPort) *batchShard {
	if len(c.shards) == 1 {
		return c.shards[0]
	}
	a := addr.Addr().As16()
	h := uint32(addr.Port())*0x9e3779b1 ^ binary.LittleEndian.Uint32(a[12:])
	return c.shards[h%uint32(len(c.shards))]
}

// batchV6 adapts ipv6.PacketConn (whose Message is the same type).
type batchV6 struct{ pc *ipv6.PacketConn }

func (b batchV6) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	return b.pc.WriteBatch(ms, flags)
}

// Dropped counts datagrams the kernel refused to send (sendmmsg(2)
// failed on them) or that were still queued when a close timed out.
func (c *batchConn) Dropped() uint64 {
	var n uint64
	for _, sh := range c.shards {
		n += sh.dropped.Load()
	}
	return n
}

// WriteToAddrPort queues a copy of b for addr and sends the queue unless
// a writer pass will (see batchConn); b may be reused at once.
func (c *batchConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	d := c.newDatagram()
	d.buf = append(d.buf[:0], b...)
	d.addr = addr
	if err := c.queue(d); err != nil {
		return 0, err
	}
	return len(b), nil
}

// newDatagram takes a datagram from the pool, for queue.
func (c *batchConn) newDatagram() *datagram { return c.pool.Get().(*datagram) }

// putDatagram gives back a datagram that will not be queued.
func (c *batchConn) putDatagram(d *datagram) { c.pool.Put(d) }

// queue queues d, filled by the caller, for its destination's shard and
// sends as WriteToAddrPort describes. d belongs to the queue from then on,
// even when queue fails.
func (c *batchConn) queue(d *datagram) error {
	sh := c.shard(d.addr)
	n, err := sh.enqueue(d)
	if err != nil {
		c.pool.Put(d)
		return err
	}
	if n >= batchMax || c.held.Load() == 0 {
		sh.flush(n > batchQueueMax, &c.held)
	}
	return nil
}

// enqueue appends d and returns the queue's new length.
func (sh *batchShard) enqueue(d *datagram) (int, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.closed {
		return 0, net.ErrClosed
	}
	sh.queue = append(sh.queue, d)
	return len(sh.queue), nil
}

// flush sends the queue. If another goroutine is sending, flush leaves
// the queue to it (wait false) or waits its turn (wait true: a writer
// pass ending, or a queue over batchQueueMax). While a writer pass is
// under way (held) a sender outside it takes the queue once and leaves
// the rest to the pass, which sends what it queued when it ends: a
// goroutine that only had a PLI or a STUN reply to send must not end up
// sending every student's datagrams. Otherwise the sender sends until the
// queue is empty and checks it again after it lets go, so a datagram
// queued while it finished is never left behind.
func (sh *batchShard) flush(wait bool, held *atomic.Int32) {
	for {
		if wait {
			sh.sendMu.Lock()
		} else if !sh.sendMu.TryLock() {
			return
		}
		for sh.sendQueued() && (wait || held.Load() == 0) {
		}
		sh.sendMu.Unlock()
		if !sh.pending() || held.Load() > 0 {
			return
		}
		wait = false
	}
}

// sendQueued takes the queue and sends it; it reports whether there was
// anything. The caller holds sendMu.
func (sh *batchShard) sendQueued() bool {
	sh.mu.Lock()
	q := sh.queue
	sh.queue = sh.spare[:0]
	sh.mu.Unlock()
	if len(q) > 0 {
		sh.send(q, sh.bufs)
	}
	sh.spare = q[:0]
	return len(q) > 0
}

func (sh *batchShard) pending() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return len(sh.queue) > 0
}

// hold starts a writer pass: datagrams queued meanwhile wait for release
// (or for a full batch) instead of being sent one call each.
func (c *batchConn) hold() { c.held.Add(1) }

// release ends a writer pass and sends what is queued.
func (c *batchConn) release() {
	c.held.Add(-1)
	for _, sh := range c.shards {
		if sh.pending() {
			sh.flush(true, &c.held)
		}
	}
}

// WriteTo is net.PacketConn's write, for callers without an AddrPort.
func (c *batchConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: errors.New("not a UDP address")}
	}
	return c.WriteToAddrPort(b, ua.AddrPort())
}

// addrPortReader reads one datagram and its sender.
type addrPortReader interface {
	ReadFromAddrPort(b []byte) (int, netip.AddrPort, error)
}

// udpReader is a *net.UDPConn's read.
type udpReader struct{ c *net.UDPConn }

func (u udpReader) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return u.c.ReadFromUDPAddrPort(b)
}

// ReadFromAddrPort reads from the socket the next datagram that tap, if
// set, does not take (direct.go: the RTCP of subscribing connections).
func (c *batchConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, addr, err := c.reader.ReadFromAddrPort(b)
		if err != nil || c.tap == nil || !c.tap(b[:n], addr) {
			return n, addr, err
		}
	}
}

// ReadFrom is ReadFromAddrPort for callers that want a net.Addr.
func (c *batchConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}

// LocalAddr is the socket's address (a *net.UDPAddr, as pion expects).
func (c *batchConn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// SetDeadline, SetReadDeadline and SetWriteDeadline act on the socket; a
// write deadline bounds the sends.
func (c *batchConn) SetDeadline(t time.Time) error      { return c.conn.SetDeadline(t) }
func (c *batchConn) SetReadDeadline(t time.Time) error  { return c.conn.SetReadDeadline(t) }
func (c *batchConn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// Close stops accepting writes, sends what is queued (so the DTLS
// close_notify alerts of peers closed just before still leave), then
// closes the socket.
func (c *batchConn) Close() error {
	c.once.Do(func() {
		for _, sh := range c.shards {
			sh.mu.Lock()
			sh.closed = true
			sh.mu.Unlock()
		}
		_ = c.conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		for _, sh := range c.shards {
			sh.flush(true, &c.held)
		}
		c.closeErr = c.conn.Close()
	})
	return c.closeErr
}

// batchBufs are a shard's reusable message headers and addresses, so
// a batch allocates nothing.
type batchBufs struct {
	msgs  [batchMax]ipv4.Message
	addrs [batchMax]net.UDPAddr
	ips   [batchMax][16]byte
	bufs  [batchMax][gsoMaxSegments][]byte
	oob   [batchMax][gsoControlLen]byte
}

// send writes q, a message per datagram or, with GSO, per run of
// datagrams to one destination (gsoRun), at most batchMax messages per
// system call, and returns the buffers to the pool. With GSO q is first
// grouped by destination; each destination's datagrams keep their order.
func (sh *batchShard) send(q []*datagram, b *batchBufs) {
	if sh.gso && len(q) > 1 {
		slices.SortStableFunc(q, func(x, y *datagram) int { return x.addr.Compare(y.addr) })
	}
	for len(q) > 0 {
		n := sh.sendBatch(q, b)
		for i, d := range q[:n] {
			sh.pool.Put(d)
			q[i] = nil
		}
		q = q[n:]
	}
}

// sendBatch sends up to batchMax messages from the head of q with one
// sendmmsg(2) and returns how many datagrams it consumed. sendmmsg may
// send fewer messages than asked: it stops at the first that fails once
// at least one was sent, and fails the call when the first one fails. A
// failed datagram is dropped (counted) and the rest are retried; a failed
// GSO message (a device that cannot segment UDP) turns GSO off for the
// shard and its datagrams are sent again one by one.
func (sh *batchShard) sendBatch(q []*datagram, b *batchBufs) int {
	var msgs, used int
	starts := [batchMax + 1]int{}
	for msgs < batchMax && used < len(q) {
		starts[msgs] = used
		used += sh.fill(b, msgs, q[used:])
		msgs++
	}
	starts[msgs] = used
	sent := 0
	for sent < msgs {
		n, err := sh.batch.WriteBatch(b.msgs[sent:msgs], 0)
		if err == nil && n <= 0 {
			err = io.ErrNoProgress // never loop on a call that sends nothing
		}
		if err == nil || n > 0 {
			sent += n
			continue
		}
		if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
			sh.dropped.Add(uint64(used - starts[sent]))
			break
		}
		if first := q[starts[sent]:starts[sent+1]]; len(first) > 1 {
			sh.gso = false // resend from this message on, unsegmented
			used = starts[sent]
			break
		}
		sh.dropped.Add(1) // the first message failed: drop it, send the rest
		sent++
	}
	for i := range msgs {
		clear(b.bufs[i][:]) // the datagrams go back to the pool
	}
	return used
}

// fill makes message i of b from the head of q and returns how many
// datagrams it carries: one, or with GSO (UDP_SEGMENT, udp(7)) a run of
// datagrams to one destination that all have the first one's size except
// the last, which may be shorter: the kernel, or the NIC, cuts the
// message back into those datagrams.
func (sh *batchShard) fill(b *batchBufs, i int, q []*datagram) int {
	d := q[0]
	n := 1
	if sh.gso {
		n = gsoRun(q)
	}
	for k := range n {
		b.bufs[i][k] = q[k].buf
	}
	b.addrs[i] = net.UDPAddr{IP: b.ip(i, d.addr.Addr()), Port: int(d.addr.Port())}
	b.msgs[i] = ipv4.Message{Buffers: b.bufs[i][:n], Addr: &b.addrs[i]}
	if n > 1 {
		b.msgs[i].OOB = gsoControl(b.oob[i][:0], len(d.buf))
	}
	return n
}

// gsoRun is how many datagrams at the head of q one GSO message can
// carry: same destination, same size but for a shorter last one, at most
// gsoMaxSegments and gsoMaxBytes.
func gsoRun(q []*datagram) int {
	size, total := len(q[0].buf), len(q[0].buf)
	n := 1
	for n < len(q) && n < gsoMaxSegments {
		d := q[n]
		if d.addr != q[0].addr || len(d.buf) > size || len(d.buf) == 0 || total+len(d.buf) > gsoMaxBytes {
			break
		}
		total += len(d.buf)
		n++
		if len(d.buf) < size {
			break // a shorter datagram ends a run
		}
	}
	return n
}

// ip writes a's address into slot i's own array: an IPv4 (or IPv4-mapped)
// address as 4 bytes, so it is sent as AF_INET, which a dual-stack socket
// also accepts.
func (b *batchBufs) ip(i int, a netip.Addr) net.IP {
	a = a.Unmap()
	if a.Is4() {
		v := a.As4()
		copy(b.ips[i][:4], v[:])
		return b.ips[i][:4]
	}
	b.ips[i] = a.As16()
	return b.ips[i][:]
}
