package sfu

import "sync"

// Lock order: retransmitRing.mu is a leaf lock; nothing else is acquired
// while holding it. gopCache has no lock: only the track's reader
// goroutine touches it.

const (
	// ringSizeVideo and ringSizeAudio bound how far back a NACK (RFC 4585
	// 6.2.1) can be answered: 512 packets is about one second of 4 Mbit/s
	// video; audio is rarely NACKed, 128 packets is 2.5 s of Opus.
	ringSizeVideo = 512
	ringSizeAudio = 128
	// gopMaxPackets and gopMaxAge cap the cached group of pictures. A
	// longer GOP is dropped: a joiner then asks for a fresh keyframe rather
	// than being flooded with seconds of old video. A down track takes the
	// whole GOP as one queue entry (primeGOP), so its queue may be shorter
	// than a GOP; other sinks (a recorder) get it through Deliver.
	gopMaxPackets = 900
	gopMaxAge     = 3_000_000_000 // 3 s in nanoseconds
)

// retransmitRing keeps the last packets of a track indexed by sequence
// number so NACKs are answered from one shared buffer instead of a copy per
// subscriber. The reader goroutine writes it; subscribers' writer
// goroutines read it when they serve a NACK.
type retransmitRing struct {
	mu      sync.Mutex
	slots   []*Packet
	mask    uint16
	highest uint16
	started bool
}

// newRetransmitRing makes a ring of size slots; size must be a power of two
// no larger than 32768 so that seq&mask indexes it and wrap-around of the
// 16-bit sequence number keeps the mapping stable.
func newRetransmitRing(size int) *retransmitRing {
	return &retransmitRing{slots: make([]*Packet, size), mask: uint16(size - 1)}
}

// put stores p (taking its own reference) unless p is older than the ring
// reaches.
func (r *retransmitRing) put(p *Packet) {
	seq := p.header.SequenceNumber
	r.mu.Lock()
	if r.started && int16(seq-r.highest) < 0 && r.highest-seq > r.mask {
		r.mu.Unlock()
		return
	}
	if !r.started || int16(seq-r.highest) > 0 {
		r.highest = seq
		r.started = true
	}
	p.Retain()
	i := seq & r.mask
	old := r.slots[i]
	r.slots[i] = p
	r.mu.Unlock()
	if old != nil {
		old.Release()
	}
}

// get returns the packet with sequence number seq with a reference the
// caller must release, or nil when it is not (or no longer) stored.
func (r *retransmitRing) get(seq uint16) *Packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	// RFC 3550 A.1: compare sequence numbers modulo 2^16; a packet newer
	// than the highest seen, or more than a ring behind it, is not held.
	if !r.started || r.highest-seq > r.mask {
		return nil
	}
	p := r.slots[seq&r.mask]
	if p == nil || p.header.SequenceNumber != seq {
		return nil
	}
	p.Retain()
	return p
}

// clear releases every stored packet.
func (r *retransmitRing) clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, p := range r.slots {
		if p != nil {
			p.Release()
			r.slots[i] = nil
		}
	}
	r.started = false
}

// gopCache holds the packets since the last keyframe so a new subscriber
// starts decoding at once instead of waiting for the publisher's next
// keyframe (and without every join costing a PLI).
type gopCache struct {
	pkts    []*Packet
	active  bool
	startTS uint32
	startAt int64
}

func newGOPCache() *gopCache {
	return &gopCache{pkts: make([]*Packet, 0, gopMaxPackets)}
}

// add records p, received at now (ns). A keyframe start with a new RTP
// timestamp begins a new GOP; several packets of one keyframe may be
// flagged (H.264 SPS, then IDR), so the timestamp keeps them in one GOP.
func (g *gopCache) add(p *Packet, now int64) {
	if p.keyframe && (!g.active || p.header.Timestamp != g.startTS) {
		g.reset()
		g.active, g.startTS, g.startAt = true, p.header.Timestamp, now
	}
	if !g.active {
		return
	}
	if len(g.pkts) >= gopMaxPackets || now-g.startAt > gopMaxAge {
		g.reset()
		return
	}
	p.Retain()
	g.pkts = append(g.pkts, p)
}

// gopSink is a sink that takes a whole cached GOP at once (a down track),
// so its queue need not be as long as a GOP.
type gopSink interface {
	primeGOP(pkts []*Packet)
}

// prime delivers the cached GOP to s and reports whether it had one.
func (g *gopCache) prime(s Sink) bool {
	if !g.active || len(g.pkts) == 0 {
		return false
	}
	if gs, ok := s.(gopSink); ok {
		gs.primeGOP(g.pkts)
		return true
	}
	for _, p := range g.pkts {
		s.Deliver(p)
	}
	return true
}

// reset releases the cached packets.
func (g *gopCache) reset() {
	for i, p := range g.pkts {
		p.Release()
		g.pkts[i] = nil
	}
	g.pkts = g.pkts[:0]
	g.active = false
}
