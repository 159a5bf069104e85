package sfu

// Lock order: a DownTrack takes no locks of its own (scheduling it takes
// its writer shard's leaf lock, writers.go). Its state is split by owner:
// the delivering goroutine (the source track's reader) owns its source's
// waitKey and skipped; its writer shard's goroutine owns seq, history,
// hdr, out and the priming state; binding and src are atomic pointers set
// by pion's Bind/Unbind and by whoever attaches a source (switch.go).
// Handing NACKs to the shard over a channel keeps every write to the
// binding on one goroutine, so retransmissions and live packets go out in
// a consistent order.

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

const (
	// Queue sizes bound the memory and latency a slow subscriber can
	// hold. A primed GOP takes one entry (primeGOP), so the video queue
	// only holds live packets. Over UDP a write never waits (it queues a
	// datagram, batch.go): the queue only bridges the writer shard's
	// turns, and 128 is about 0.8 s of 1.5 Mbit/s video, 32 is 0.6 s of
	// Opus. A subscriber over ICE-TCP, whose writes wait for its TCP
	// window, gets queues tcpQueueFactor times as long (growQueue). Every
	// subscriber pays for its queues up front.
	queueSizeVideo = 128
	queueSizeAudio = 32
	tcpQueueFactor = 2
	// nackQueueSize: NACK batches waiting for the writer. When it is full
	// the writer is far behind and a retransmission would be too late.
	nackQueueSize = 8
	// primeFirstBurst is what a primed GOP sends at once: a 720p VP8
	// keyframe at 1.5 Mbit/s is 30-60 KB, so the picture a joiner sees
	// first is not delayed. The rest goes in bursts of primeBurst spaced
	// to average primeRate, 8x a 2 Mbit/s lesson stream: a 2 s GOP
	// catches up in a quarter of a second.
	primeFirstBurst = 64 << 10
	primeBurst      = 16 << 10
	primeRate       = 16_000_000 // bits per second
	// frameQueueMax: a video down track is scheduled when a frame ends
	// (frames.go), or once this many packets wait, so a long keyframe
	// leaves in runs a GSO message can carry (gsoMaxSegments).
	frameQueueMax = 32
)

// queued is one entry of a down track's queue: one packet, or (gop not
// nil, p nil) a whole cached GOP to prime the subscriber with. skipped is
// true when packets before this one were dropped, so the writer closes the
// gap in the outgoing sequence.
type queued struct {
	p       *Packet
	skipped bool
	src     *source
	gop     *[]*Packet
}

// binding is what pion's Bind gives a down track: where and how to write.
type binding struct {
	id   string
	ssrc uint32
	pt   uint8
	w    webrtc.TrackLocalWriter
	// codecs are all the codecs negotiated for the sender; a switchable
	// down track picks among them for each source (switch.go).
	codecs []webrtc.RTPCodecParameters
}

// DownTrack forwards one Track to one subscriber. It is the Sink the track
// delivers to and the webrtc.TrackLocal the subscriber's peer connection
// sends. Deliver never blocks: packets wait in a bounded queue drained by
// the goroutine of the down track's writer shard (writers.go).
type DownTrack struct {
	track  *Track // the fixed source; nil for a switchable down track
	sw     *switchable
	src    atomic.Pointer[source]
	out    outState
	kind   webrtc.RTPCodecType
	stats  *counters
	log    zerolog.Logger
	queue  chan queued
	nacks  chan []uint16
	shard  atomic.Pointer[writerShard]
	closed atomic.Bool
	// scheduled: the down track is on its shard's ready list.
	scheduled atomic.Bool
	// priming is the GOP being written paced, nil when none; primer keeps
	// its state and timer between GOPs. Both belong to the shard.
	priming *primeState
	primer  *primeState
	binding atomic.Pointer[binding]
	// direct, when set, writes past pion once the connection is up
	// (direct.go); set before the down track is bound.
	direct *directOut
	// sender is pion's sender of the down track, whose RTCP readRTCP
	// reads; set by the owner when it adds the transceiver.
	sender  *webrtc.RTPSender
	dropped atomic.Uint64
	sent    atomic.Uint64
	resent  atomic.Uint64
	octets  atomic.Uint64 // payload bytes sent, for sender reports
	// clock is what sender reports are computed from (reports.go); set by
	// the writer shard when the source being written changes.
	clock   atomic.Pointer[outClock]
	seq     seqRewriter
	history *sentMap
	hdr     rtp.Header
	pending outCounts
	// reception is the receiver's latest report (reception.go).
	reception receptionState
}

func newDownTrack(t *Track, stats *counters, log zerolog.Logger) *DownTrack {
	size := queueSizeAudio
	if t.kind == webrtc.RTPCodecTypeVideo {
		size = queueSizeVideo
	}
	d := &DownTrack{
		track: t, kind: t.kind, stats: stats, log: log,
		queue:   make(chan queued, size),
		nacks:   make(chan []uint16, nackQueueSize),
		history: newSentMap(t.kind),
	}
	d.reception.created = time.Now()
	s := newSource(t)
	s.sink = d
	d.src.Store(s)
	d.seq = newSeqRewriter(uint16(rand.Uint32()))
	return d
}

// Track is the published track this down track forwards now (nil while a
// switchable down track has no source).
func (d *DownTrack) Track() *Track {
	if s := d.src.Load(); s != nil {
		return s.track
	}
	return nil
}

// ID is the track's ID, as pion's TrackLocal requires.
func (d *DownTrack) ID() string {
	if d.sw != nil {
		return d.sw.id
	}
	return string(d.track.id)
}

// StreamID is the published stream's ID (the msid stream in the SDP).
func (d *DownTrack) StreamID() string {
	if d.sw != nil {
		return d.sw.streamID
	}
	return string(d.track.streamID)
}

// RID is empty: simulcast layers are not forwarded separately.
func (d *DownTrack) RID() string { return "" }

// Kind is audio or video.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.kind }

// Dropped counts packets this down track did not forward because its queue
// was full or it waited for a keyframe.
func (d *DownTrack) Dropped() uint64 { return d.dropped.Load() }

// Forwarded counts packets written to the subscriber, retransmissions
// excluded.
func (d *DownTrack) Forwarded() uint64 { return d.sent.Load() }

// Bind is called by pion when the subscriber's answer is applied; it picks
// the negotiated codec matching the published one.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	if d.sw != nil {
		return d.bindSwitchable(ctx)
	}
	codec, ok := matchCodec(d.track.codec, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, ErrUnsupportedCodec
	}
	d.binding.Store(&binding{
		id: ctx.ID(), ssrc: uint32(ctx.SSRC()), pt: uint8(codec.PayloadType), w: ctx.WriteStream(),
	})
	return codec, nil
}

// Unbind is called by pion when the sender stops.
func (d *DownTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	if b := d.binding.Load(); b != nil && b.id == ctx.ID() {
		d.binding.CompareAndSwap(b, nil)
	}
	return nil
}

// Deliver queues p for the writer shard without blocking. When the
// queue is full the packet is dropped and counted; video then skips to the
// next keyframe (a decoder cannot use frames that reference a lost one),
// audio just continues.
//
// A video down track waiting for a keyframe asks the track for one only
// while its queue has room to take it: a subscriber that stays stuck must
// not make the publisher send keyframes to everyone every pliInterval.
func (d *DownTrack) Deliver(p *Packet) { d.deliver(d.src.Load(), p) }

// deliver queues p, which comes from source s. A packet from a source the
// down track has switched away from is ignored.
func (d *DownTrack) deliver(s *source, p *Packet) {
	if d.closed.Load() || s == nil || d.src.Load() != s {
		return
	}
	if s.waitKey {
		if !p.keyframe {
			d.drop(s)
			if len(d.queue) < cap(d.queue)/2 {
				s.track.RequestKeyframe()
			}
			return
		}
		s.waitKey = false
	}
	p.Retain()
	select {
	case d.queue <- queued{p: p, skipped: s.skipped, src: s}:
		s.skipped = false
		// closed: stop ran after the check above and its turn may have
		// drained the queue before this packet went in; another turn
		// releases it.
		if p.endsFrame || len(d.queue) >= frameQueueMax || d.closed.Load() {
			d.schedule()
		}
	default:
		p.Release()
		d.drop(s)
		s.waitKey = d.kind == webrtc.RTPCodecTypeVideo
	}
}

// primeGOP queues the cached GOP as one entry, so the queue need not be
// as long as a GOP. It is called on the track's reader goroutine (through
// gopCache.prime) before any live packet reaches the new sink.
func (d *DownTrack) primeGOP(pkts []*Packet) { d.prime(d.src.Load(), pkts) }

// prime queues pkts, from source s, as one entry holding a reference to
// each packet. The GOP starts on a keyframe, so a waiting video down track
// stops waiting.
func (d *DownTrack) prime(s *source, pkts []*Packet) {
	if d.closed.Load() || s == nil || d.src.Load() != s || len(pkts) == 0 {
		return
	}
	if s.waitKey && !pkts[0].keyframe {
		d.drop(s)
		return
	}
	gop := make([]*Packet, len(pkts))
	for i, p := range pkts {
		p.Retain()
		gop[i] = p
	}
	select {
	case d.queue <- queued{gop: &gop, skipped: s.skipped, src: s}:
		s.waitKey, s.skipped = false, false
		d.schedule()
	default:
		releaseAll(gop)
		d.drop(s)
		s.waitKey = d.kind == webrtc.RTPCodecTypeVideo
	}
}

func releaseAll(pkts []*Packet) {
	for _, p := range pkts {
		p.Release()
	}
}

func (d *DownTrack) drop(s *source) {
	s.skipped = true
	d.dropped.Add(1)
	d.stats.packetsDropped.Add(1)
}

// writeQueued rewrites and writes one queued packet (or each packet of a
// queued GOP), then releases it.
func (d *DownTrack) writeQueued(q queued) {
	if q.gop != nil {
		if d.isStale(q) {
			// A GOP of a source the viewer has switched away from:
			// pacing it would only delay the new source's.
			releaseAll(*q.gop)
			return
		}
		d.startPrime(q)
		return
	}
	p := q.p
	defer p.Release()
	if d.isStale(q) {
		return
	}
	if q.skipped {
		d.seq.skip()
	}
	b := d.binding.Load()
	if b == nil {
		d.seq.skip()
		return
	}
	if q.src != d.out.src || b != d.out.b {
		d.switchOut(q.src, b, p)
	}
	if !d.out.ok || len(p.payload) == 0 {
		// Padding-only packets probe the publisher's bandwidth; they carry
		// nothing for the subscriber. Skip them without leaving a gap.
		d.seq.skip()
		return
	}
	out, ok := d.seq.rewrite(p.header.SequenceNumber)
	if !ok {
		return
	}
	d.history.record(out, p.header.SequenceNumber)
	if d.write(b, p, out) {
		d.sent.Add(1)
		d.pending.packets++
	}
}

// write sends p under outgoing sequence number out. The header is the down
// track's own copy: the shared packet is never modified.
func (d *DownTrack) write(b *binding, p *Packet, out uint16) bool {
	d.hdr = p.header
	d.hdr.SequenceNumber = out
	d.hdr.SSRC = b.ssrc
	d.hdr.PayloadType = d.out.pt
	d.hdr.Timestamp += d.out.tsOffset
	// Header extension IDs are negotiated per peer connection (RFC 8285
	// 6), so the publisher's extensions would be misread here.
	d.hdr.Extension = false
	d.hdr.ExtensionProfile = 0
	d.hdr.Extensions = nil
	d.hdr.Padding = false
	d.hdr.PaddingSize = 0
	if !d.writeOut(b, p.payload) {
		return false
	}
	d.octets.Add(uint64(len(p.payload)))
	if d.sw != nil {
		d.out.markWritten(d.hdr.Timestamp)
	}
	d.pending.bytes += uint64(d.hdr.MarshalSize() + len(p.payload))
	return true
}

// writeOut sends d.hdr and payload the direct way when it can, through
// pion otherwise.
func (d *DownTrack) writeOut(b *binding, payload []byte) bool {
	if d.direct != nil {
		if done, err := d.direct.write(&d.hdr, payload); done {
			return err == nil
		}
	}
	_, err := b.w.WriteRTP(&d.hdr, payload)
	return err == nil
}

// growQueue gives a down track written over ICE-TCP its longer queue.
// It is called once, before the down track is attached to any source:
// nothing else uses the queue yet.
func (d *DownTrack) growQueue() {
	d.queue = make(chan queued, cap(d.queue)*tcpQueueFactor)
}

// outCounts are a down track's forwarded packets and bytes not yet added
// to the engine's counters. The writer shards of every core add to the
// same counters; adding once per turn (run) rather than once per packet
// keeps their cache line from moving between cores on every packet.
type outCounts struct{ packets, bytes uint64 }

// flushCounts adds the pending counts to the engine's. Shard-owned.
func (d *DownTrack) flushCounts() {
	if d.pending.packets > 0 {
		d.stats.packetsForwarded.Add(d.pending.packets)
	}
	if d.pending.bytes > 0 {
		d.stats.bytesOut.Add(d.pending.bytes)
	}
	d.pending = outCounts{}
}

// serveNACK retransmits the packets a subscriber reported lost (RFC 4585
// 6.2.1), from the track's shared ring, under their original outgoing
// sequence numbers. Without RTX negotiated the retransmission travels on
// the media SSRC, as RFC 4588 allows for sessions that do not use it.
func (d *DownTrack) serveNACK(seqs []uint16) {
	b := d.binding.Load()
	if b == nil || b != d.out.b || d.out.src == nil || !d.out.ok {
		return
	}
	for _, out := range seqs {
		src, ok := d.history.lookup(out)
		if !ok {
			continue
		}
		p := d.out.src.track.retransmit(src)
		if p == nil {
			continue
		}
		if d.write(b, p, out) {
			d.resent.Add(1)
			d.stats.nacksServed.Add(1)
		}
		p.Release()
	}
}

// handleRTCP acts on a subscriber's feedback for this down track: NACKs go
// to the writer shard, PLI and FIR (RFC 4585 6.3.1, RFC 5104 4.3.1)
// become a merged keyframe request to the publisher.
func (d *DownTrack) handleRTCP(pkts []rtcp.Packet) {
	b := d.binding.Load()
	s := d.src.Load()
	if b == nil || s == nil {
		return
	}
	for _, pkt := range pkts {
		switch pk := pkt.(type) {
		case *rtcp.PictureLossIndication:
			if pk.MediaSSRC == b.ssrc {
				s.track.RequestKeyframe()
			}
		case *rtcp.FullIntraRequest:
			// RFC 5104 4.3.1.1: each FCI entry names the media sender
			// it asks, so one FIR may be for another down track.
			for _, e := range pk.FIR {
				if e.SSRC == b.ssrc {
					s.track.RequestKeyframe()
					break
				}
			}
		case *rtcp.TransportLayerNack:
			if pk.MediaSSRC == b.ssrc {
				d.queueNACK(pk)
			}
		case *rtcp.ReceiverReport:
			d.receptionReports(s.track.codec.ClockRate, b.ssrc, pk.Reports, time.Now())
		case *rtcp.SenderReport:
			d.receptionReports(s.track.codec.ClockRate, b.ssrc, pk.Reports, time.Now())
		}
	}
}

func (d *DownTrack) queueNACK(n *rtcp.TransportLayerNack) {
	var seqs []uint16
	for _, pair := range n.Nacks {
		seqs = append(seqs, pair.PacketList()...)
	}
	select {
	case d.nacks <- seqs:
		d.schedule()
	default:
	}
}

// startRTCPReaders reads the RTCP of each of downs through pion, each on
// a goroutine counted in wg, for connections whose RTCP does not come the
// direct way (direct.go).
func startRTCPReaders(wg *sync.WaitGroup, downs []*DownTrack) {
	for _, d := range downs {
		wg.Add(1)
		go func() { defer wg.Done(); d.readRTCP() }()
	}
}

// readRTCP reads the subscriber's RTCP for this down track through pion
// until its sender stops.
func (d *DownTrack) readRTCP() {
	buf := make([]byte, 1500)
	for {
		n, _, err := d.sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		d.handleRTCP(pkts)
	}
}

// stop marks the down track closed; its shard then releases what it holds.
// A Deliver racing with stop may queue a packet after that: closed makes
// deliver schedule the down track again, so the shard releases it too.
func (d *DownTrack) stop() {
	if d.closed.CompareAndSwap(false, true) {
		d.schedule()
	}
}

// drain releases the packets left in the queue of a stopped down track.
func (d *DownTrack) drain() {
	for {
		select {
		case q := <-d.queue:
			if q.gop != nil {
				releaseAll(*q.gop)
			} else {
				q.p.Release()
			}
		default:
			return
		}
	}
}
