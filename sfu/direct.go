package sfu

// Lock order: directOut.mu is taken by the goroutine writing one of the
// connection's down tracks (its writer shard) and held while the packet
// is sealed and queued, so it comes before batchShard.mu (batch.go). The
// connection's down tracks share one writer shard, so it is uncontended.

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// srtpOverhead is room for what sealing adds to a packet: the AES-GCM tag
// (RFC 7714 7.2) or the HMAC-SHA1-80 tag (RFC 3711 4.2), 16 bytes at most.
const srtpOverhead = 16

// directOut is how a sending connection's RTP leaves once its keys are
// known (srtpkeys.go): each packet is marshalled into a pooled datagram
// of the shared socket, sealed there in place and queued for the next
// sendmmsg(2) (batch.go). pion's own path copies it three times and
// passes the srtp session, its mux and the ICE connection, each with
// locks of its own; at 100 students that was a quarter of the server's
// CPU. pion still owns everything else on the connection: ICE (consent
// checks included, RFC 7675), DTLS, and RTCP both ways, whose SRTCP
// index and keys are separate from SRTP's (RFC 3711 3.4), so the two
// never share a counter.
//
// Until the connection is up, and whenever its selected candidate pair is
// not on the shared UDP socket (ICE-TCP), write reports false and the
// down track writes through pion.
type directOut struct {
	conn *batchConn
	keys *keyCapture
	log  zerolog.Logger
	// addr is the selected pair's remote address while that pair is UDP.
	addr atomic.Pointer[netip.AddrPort]
	// sent counts the packets written the direct way; only the writer
	// shard adds to it.
	sent atomic.Uint64

	mu  sync.Mutex
	ctx *srtp.Context // nil until start found the keys
	hdr rtp.Header    // the sealing call's scratch
}

func newDirectOut(conn *batchConn, log zerolog.Logger) *directOut {
	return &directOut{conn: conn, keys: &keyCapture{}, log: log}
}

// settings are the SettingEngine hooks through which the handshake hands
// over what the keys are derived from.
func (o *directOut) settings(se *webrtc.SettingEngine) {
	se.SetDTLSKeyLogWriter(o.keys)
	se.SetDTLSServerHelloMessageHook(o.keys.serverHello)
}

// start is called once the connection is up: from then on packets go the
// direct way if the keys are known.
func (o *directOut) start() {
	ctx, err := o.keys.outContext()
	if err != nil {
		o.log.Debug().Err(err).Msg("RTP goes through pion")
		return
	}
	o.mu.Lock()
	o.ctx = ctx
	o.mu.Unlock()
}

// onPair follows the ICE agent's choice of candidate pair: only a UDP
// pair shares the socket the datagrams are queued on.
func (o *directOut) onPair(p *webrtc.ICECandidatePair) {
	if p == nil || p.Local == nil || p.Remote == nil || p.Local.Protocol != webrtc.ICEProtocolUDP {
		o.addr.Store(nil)
		return
	}
	a, err := netip.ParseAddr(p.Remote.Address)
	if err != nil {
		o.addr.Store(nil)
		return
	}
	ap := netip.AddrPortFrom(a.Unmap(), p.Remote.Port)
	o.addr.Store(&ap)
}

// write seals the packet h and payload describe and queues it. It reports
// false, having done nothing, when the packet must go through pion; err
// is set when the packet was dropped.
func (o *directOut) write(h *rtp.Header, payload []byte) (bool, error) {
	addr := o.addr.Load()
	if addr == nil {
		return false, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ctx == nil {
		return false, nil
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
