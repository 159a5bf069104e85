package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// packetBufSize holds any RTP packet on a path with a 1500-byte MTU; pion
// reads at most its receive MTU (1460 by default) per packet.
const packetBufSize = 1500

// Packet is a received RTP packet shared, immutable, by every sink.
//
// A Packet is reference counted: the track's reader holds one reference
// while it fans the packet out, the retransmit ring and the GOP cache hold
// one each, and every sink that queues the packet holds one until it has
// written it. The last Release returns the buffer to the engine's pool, so
// steady-state forwarding allocates nothing.
type Packet struct {
	refs     atomic.Int32
	pool     *packetPool // nil for packets made by NewPacket
	header   rtp.Header
	payload  []byte
	size     int // bytes on the wire, header and padding included
	keyframe bool
	// endsFrame: the packet completes what a receiver can use now
	// (frameEnds); down tracks write video a frame at a time.
	endsFrame bool
	arrival   time.Time // when the track's reader received it; zero from NewPacket
	buf       [packetBufSize]byte
}

// NewPacket parses raw RTP into a Packet that does not come from a pool,
// with one reference held by the caller. It is meant for tests of sinks and
// for tools; tracks use pooled packets.
func NewPacket(raw []byte, keyframe bool) (*Packet, error) {
	if len(raw) > packetBufSize {
		return nil, ErrMalformedRTP
	}
	p := &Packet{}
	p.refs.Store(1)
	n := copy(p.buf[:], raw)
	if err := p.parse(n); err != nil {
		return nil, err
	}
	p.keyframe = keyframe
	return p, nil
}

// Header is the packet's header as received. Callers must not modify it.
func (p *Packet) Header() *rtp.Header { return &p.header }

// Payload is the packet's payload, padding removed. Callers must not
// modify it.
func (p *Packet) Payload() []byte { return p.payload }

// Keyframe reports whether this packet starts a keyframe (video only).
func (p *Packet) Keyframe() bool { return p.keyframe }

// Arrival is when the track's reader received the packet (zero for
// packets made by NewPacket). A recorder maps RTP timestamps to wall clock
// from it; packets primed from the GOP cache keep their original arrival.
func (p *Packet) Arrival() time.Time { return p.arrival }

// Size is the packet's size on the wire, header and padding included.
func (p *Packet) Size() int { return p.size }

// Retain adds a reference.
func (p *Packet) Retain() { p.refs.Add(1) }

// Release drops a reference; the last one returns the buffer to its pool.
func (p *Packet) Release() {
	n := p.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		// A double release means two owners would share a recycled
		// buffer; failing loudly beats forwarding another stream's bytes.
		panic("sfu: Packet released more often than retained")
	}
	if p.pool != nil {
		p.pool.put(p)
	}
}

// parse fills the header and payload from p.buf[:n]. The header keeps the
// capacity of its CSRC and extension slices across reuses, so parsing does
// not allocate once a pooled packet has been used.
func (p *Packet) parse(n int) error {
	hn, err := p.header.Unmarshal(p.buf[:n])
	if err != nil {
		return ErrMalformedRTP
	}
	end := n
	p.header.PaddingSize = 0
	if p.header.Padding {
		// RFC 3550 5.1: the last octet of the padding is its length,
		// itself included.
		pad := int(p.buf[n-1])
		if pad == 0 || hn+pad > n {
			return ErrMalformedRTP
		}
		end -= pad
		p.header.PaddingSize = byte(pad)
	}
	p.payload = p.buf[hn:end]
	p.size = n
	return nil
}

// packetPool recycles packets. It belongs to an Engine (no package-level
// state), and all the engine's tracks share it.
type packetPool struct {
	pool sync.Pool
}

func newPacketPool() *packetPool {
	pp := &packetPool{}
	pp.pool.New = func() any { return &Packet{pool: pp} }
	return pp
}

// get returns a packet with one reference, owned by the caller.
func (pp *packetPool) get() *Packet {
	p := pp.pool.Get().(*Packet)
	p.refs.Store(1)
	return p
}

func (pp *packetPool) put(p *Packet) {
	p.payload = nil
	p.keyframe = false
	p.size = 0
	p.arrival = time.Time{}
	pp.pool.Put(p)
}
