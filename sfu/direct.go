package sfu

// Lock order: the owner's lock (Subscriber.mu, Viewer.mu) -> directOut.mu
// -> rtcpTaps.mu, and directOut.mu -> batchShard.sendMu -> batchShard.mu
// (batch.go). directOut.mu is taken by the writer shard writing one of
// the connection's down tracks, held while the packet is sealed and
// queued; the connection's down tracks share one shard, so it is not
// contended. needReaders is called with no directOut lock held.

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

const (
	// srtpOverhead is room for what sealing adds to a packet: the AES-GCM
	// tag (RFC 7714 7.2) or the HMAC-SHA1-80 tag (RFC 3711 4.2), 16 bytes
	// at most.
	srtpOverhead = 16
	// srtcpReplayWindow is the replay window for the RTCP read the direct
	// way (RFC 3711 3.3.2), as pion's default.
	srtcpReplayWindow = 64
)

// directOut carries a sending connection's media past pion's per-packet
// paths once its keys are known (srtpkeys.go).
//
// Out: each RTP packet is marshalled into a pooled datagram of the shared
// socket, sealed there in place and queued for the next sendmmsg(2)
// (batch.go). pion's own path copies it three times and passes the srtp
// session, its mux and the ICE connection, each with locks of its own; at
// 100 students that was a quarter of the server's CPU.
//
// In: the students' RTCP (receiver reports, NACKs, PLIs) is taken off the
// shared socket by its source address (rtcpTaps), opened and handed to
// the down tracks on the socket's reader goroutine. Through pion each
// packet woke four goroutines in turn (ICE, mux, srtcp session, the down
// track's reader), and each down track kept a reader goroutine.
//
// pion still owns everything else on the connection: ICE (consent checks
// included, RFC 7675), DTLS, and the RTCP the server sends, whose SRTCP
// index and keys are separate from SRTP's (RFC 3711 3.4).
//
// Which way RTP goes is decided once, when the connection is up (start),
// and never changes: two SRTP contexts sealing one SSRC would each keep
// their own rollover counter (RFC 3711 3.3.1), and a stale one makes the
// receiver reject the stream and, with AES-GCM, repeats nonces (RFC 7714
// 8.3). A connection whose selected pair is then not on the shared UDP
// socket (ICE-TCP), or whose keys are unknown, stays on pion's way, with
// the down tracks' RTCP readers (needReaders). A direct connection whose
// pair later leaves UDP is closed (lost), and so its client reconnects.
type directOut struct {
	conn        *batchConn
	taps        *rtcpTaps
	stats       *counters
	keys        *keyCapture
	log         zerolog.Logger
	ice         *webrtc.ICETransport // set by newOutPeerConnection
	downs       []*DownTrack         // set by the owner before start
	needReaders func()               // set by the owner before start
	lost        func()               // set by the owner before start
	// addr is the selected pair's remote address while that pair is UDP.
	addr atomic.Pointer[netip.AddrPort]
	// direct: RTP goes the direct way, for good (start).
	direct atomic.Bool
	// sent and received count the packets that went the direct way;
	// dropped those written once the direct way had no address.
	sent, received, dropped atomic.Uint64

	mu     sync.Mutex
	ctx    *srtp.Context // sealing, set with direct
	in     *srtp.Context // opening; used only by the socket's reader
	hdr    rtp.Header    // the sealing call's scratch
	inHdr  rtcp.Header   // the opening call's scratch (reader only)
	tapped netip.AddrPort
	closed bool
}

func newDirectOut(conn *batchConn, taps *rtcpTaps, stats *counters, log zerolog.Logger) *directOut {
	return &directOut{conn: conn, taps: taps, stats: stats, keys: &keyCapture{}, log: log,
		needReaders: func() {}, lost: func() {}}
}

// settings are the SettingEngine hooks through which the handshake hands
// over what the keys are derived from.
func (o *directOut) settings(se *webrtc.SettingEngine) {
	se.SetDTLSKeyLogWriter(o.keys)
	se.SetDTLSServerHelloMessageHook(o.keys.serverHello)
}

// start decides, once the connection is up and under the owner's lock,
// which way its media goes. It reports whether RTCP now comes the direct
// way; if not, the owner starts the RTCP readers.
func (o *directOut) start() bool {
	out, in, err := o.keys.contexts(srtp.SRTCPReplayProtection(srtcpReplayWindow))
	if err != nil {
		o.log.Debug().Err(err).Msg("media goes through pion")
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	// The pair is read here rather than left to onPair, whose callback
	// may come after the connection's state change; under mu, so that an
	// onPair running meanwhile is not overwritten with an older pair.
	if p, err := o.ice.GetSelectedCandidatePair(); err == nil {
		o.addr.Store(udpAddr(p))
	}
	if o.closed || o.addr.Load() == nil {
		return false
	}
	o.ctx, o.in = out, in
	o.direct.Store(true)
	o.stats.direct.Add(1)
	return o.retapLocked()
}

// udpAddr is p's remote address if p is a UDP pair, else nil.
func udpAddr(p *webrtc.ICECandidatePair) *netip.AddrPort {
	if p == nil || p.Local == nil || p.Remote == nil || p.Local.Protocol != webrtc.ICEProtocolUDP {
		return nil
	}
	a, err := netip.ParseAddr(p.Remote.Address)
	if err != nil {
		return nil
	}
	ap := netip.AddrPortFrom(a.Unmap(), p.Remote.Port)
	return &ap
}

// onPair follows the ICE agent's choice of candidate pair: only a UDP
// pair shares the socket the datagrams are queued on.
func (o *directOut) onPair(p *webrtc.ICECandidatePair) {
	ap := udpAddr(p)
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.addr.Store(ap)
	lost := o.direct.Load() && !o.retapLocked()
	o.mu.Unlock()
	if lost {
		o.log.Warn().Msg("selected ICE pair left UDP: connection closed")
		o.needReaders()
		o.lost()
	}
}

// retapLocked files the connection under its current address with the
// socket's reader, and reports whether it is filed.
func (o *directOut) retapLocked() bool {
	ap := o.addr.Load()
	if o.tapped.IsValid() {
		o.taps.remove(o.tapped, o)
		o.tapped = netip.AddrPort{}
	}
	if ap == nil || o.closed {
		return false
	}
	o.taps.add(*ap, o)
	o.tapped = *ap
	return true
}

// close stops the direct way both ways at once, before the connection's
// down tracks stop: nothing is sealed after it (RFC 7675 5.1).
func (o *directOut) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed && o.direct.Load() {
		o.stats.direct.Add(-1)
	}
	o.closed = true
	o.addr.Store(nil)
	o.ctx = nil
	o.retapLocked()
}

// write seals the packet h and payload describe and queues it. It reports
// false, having done nothing, when the packet goes through pion; err is
// set when the packet was dropped.
func (o *directOut) write(h *rtp.Header, payload []byte) (bool, error) {
	if !o.direct.Load() {
		return false, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	addr := o.addr.Load()
	if addr == nil || o.ctx == nil {
		o.dropped.Add(1)
		return true, errNoPath
	}
	d := o.conn.newDatagram()
	n := h.MarshalSize()
	size := n + len(payload)
	if cap(d.buf) < size+srtpOverhead {
		d.buf = make([]byte, 0, size+srtpOverhead)
	}
	buf := d.buf[:size]
	if _, err := h.MarshalTo(buf); err != nil {
		o.conn.putDatagram(d)
		return true, err
	}
	copy(buf[n:], payload)
	// Sealed in place: the cipher writes over the plaintext it reads.
	sealed, err := o.ctx.EncryptRTP(buf, buf, &o.hdr)
	if err != nil {
		o.conn.putDatagram(d)
		return true, err
	}
	d.buf, d.addr = sealed, *addr
	if err := o.conn.queue(d); err != nil {
		return true, err
	}
	o.sent.Add(1)
	return true, nil
}

// receive opens one SRTCP packet from the connection's address into buf
// and hands it to the down tracks. It reports false, leaving the packet to
// pion, when it does not authenticate with the connection's keys: it may
// be an older connection's from the same address.
func (o *directOut) receive(b, buf []byte) bool {
	plain, err := o.in.DecryptRTCP(buf[:0], b, &o.inHdr)
	if errors.Is(err, srtp.ErrFailedToVerifyAuthTag) {
		return false
	}
	if err != nil {
		return true // a replay or a runt: dropped, as pion would
	}
	pkts, err := rtcp.Unmarshal(plain)
	if err != nil {
		return true
	}
	o.received.Add(1)
	for _, d := range o.downs {
		d.handleRTCP(pkts)
	}
	return true
}

// rtcpTaps files sending connections by remote address for the shared
// socket's reader, which hands each its RTCP (directOut.receive).
type rtcpTaps struct {
	mu   sync.RWMutex
	m    map[netip.AddrPort]*directOut
	bufs sync.Pool
}

func (t *rtcpTaps) add(ap netip.AddrPort, o *directOut) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[netip.AddrPort]*directOut{}
	}
	t.m[ap] = o
}

func (t *rtcpTaps) remove(ap netip.AddrPort, o *directOut) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[ap] == o {
		delete(t.m, ap)
	}
}

// tap takes b if it is RTCP from a filed connection. RTP and RTCP are
// told apart from DTLS and STUN by the first byte (RFC 7983 7) and from
// each other by the second: RTCP packet types 192-223 (RFC 5761 4).
func (t *rtcpTaps) tap(b []byte, from netip.AddrPort) bool {
	if len(b) < 8 || b[0] < 128 || b[0] > 191 || b[1] < 192 || b[1] > 223 {
		return false
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	t.mu.RLock()
	o := t.m[from]
	t.mu.RUnlock()
	if o == nil {
		return false
	}
	buf, _ := t.bufs.Get().(*[]byte)
	if buf == nil {
		b := make([]byte, datagramCap)
		buf = &b
	}
	defer t.bufs.Put(buf)
	return o.receive(b, *buf)
}
