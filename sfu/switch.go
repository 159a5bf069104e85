package sfu

// A switchable down track forwards whichever track is its source now and
// keeps one outgoing RTP stream across source changes: the SSRC stays, the
// sequence numbers continue without a gap (RFC 3550 5.1: a gap reads as
// loss), and the timestamps are re-based so they keep advancing with
// wall-clock time. The first video packet after a switch is a keyframe,
// from the new track's cached group of pictures.
//
// Ownership: src is swapped by the owner of the down track (Viewer, under
// Viewer.mu); each source's waitKey and skipped belong to its track's
// reader goroutine; outState belongs to the writer shard, which
// notices a switch from the source recorded with each queued packet.

import (
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// source is one attachment of a down track to a track.
type source struct {
	track   *Track
	sink    Sink // what the track delivers to: the down track or a sourceSink
	waitKey bool // track reader: video waits for a keyframe
	skipped bool // track reader: packets were dropped
}

func newSource(t *Track) *source {
	// A video subscriber cannot decode anything before a keyframe.
	return &source{track: t, waitKey: t.kind == webrtc.RTPCodecTypeVideo}
}

// sourceSink is the Sink a switchable down track gives each source, so a
// late packet from a previous source is told apart and ignored.
type sourceSink struct {
	d *DownTrack
	s *source
}

func (k *sourceSink) Deliver(p *Packet) { k.d.deliver(k.s, p) }

func (k *sourceSink) primeGOP(pkts []*Packet) { k.d.prime(k.s, pkts) }

// switchable is what a switchable down track has instead of a fixed track.
type switchable struct {
	id       string
	streamID string
}

// outState is the writer shard's view of the source being written.
type outState struct {
	src      *source
	b        *binding
	ok       bool  // the source's codec is negotiated with the subscriber
	pt       uint8 // the negotiated payload type of the source's codec
	tsOffset uint32
	wrote    bool
	lastTS   uint32
	lastAt   time.Time
}

func (o *outState) markWritten(ts uint32) {
	if o.wrote && int32(ts-o.lastTS) <= 0 {
		return // a retransmission
	}
	o.wrote, o.lastTS, o.lastAt = true, ts, time.Now()
}

// newSwitchDownTrack makes a down track of kind with no source yet.
func newSwitchDownTrack(kind webrtc.RTPCodecType, id, streamID string, stats *counters, log zerolog.Logger) *DownTrack {
	size := queueSizeAudio
	if kind == webrtc.RTPCodecTypeVideo {
		size = queueSizeVideo
	}
	d := &DownTrack{
		sw: &switchable{id: id, streamID: streamID}, kind: kind, stats: stats, log: log,
		queue:   make(chan queued, size),
		nacks:   make(chan []uint16, nackQueueSize),
		history: newSentMap(kind),
	}
	d.reception.created = time.Now()
	d.seq = newSeqRewriter(uint16(time.Now().UnixNano()))
	return d
}

// setSource makes t (nil: none) the down track's source. Calls must be
// serialized by the owner. The new track primes the down track from its
// GOP cache, so video resumes on a keyframe.
func (d *DownTrack) setSource(t *Track) {
	old := d.src.Load()
	if (old == nil && t == nil) || (old != nil && old.track == t) {
		return
	}
	var s *source
	if t != nil {
		s = newSource(t)
		s.sink = &sourceSink{d: d, s: s}
	}
	d.src.Store(s)
	if old != nil {
		old.track.RemoveSink(old.sink)
	}
	if s != nil {
		t.AddSink(s.sink)
	}
}

// bindSwitchable keeps every negotiated codec: RFC 3264 section 6.1 (and
// RFC 8829 5.3.1) lets the sender use any payload type of the answer, so
// each source is sent with the payload type of its own codec.
func (d *DownTrack) bindSwitchable(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codecs := primaryCodecs(ctx.CodecParameters())
	if len(codecs) == 0 {
		return webrtc.RTPCodecParameters{}, ErrUnsupportedCodec
	}
	chosen := codecs[0]
	if s := d.src.Load(); s != nil {
		if c, ok := matchCodec(s.track.codec, codecs); ok {
			chosen = c
		}
	}
	d.binding.Store(&binding{
		id: ctx.ID(), ssrc: uint32(ctx.SSRC()), pt: uint8(chosen.PayloadType), w: ctx.WriteStream(),
		codecs: codecs,
	})
	return chosen, nil
}

// primaryCodecs drops the retransmission (RFC 4588) and FEC entries.
func primaryCodecs(list []webrtc.RTPCodecParameters) []webrtc.RTPCodecParameters {
	out := make([]webrtc.RTPCodecParameters, 0, len(list))
	for _, c := range list {
		mime := strings.ToLower(c.MimeType)
		if strings.HasSuffix(mime, "/rtx") || strings.HasSuffix(mime, "/red") ||
			strings.HasSuffix(mime, "/ulpfec") || strings.HasSuffix(mime, "/flexfec-03") {
			continue
		}
		out = append(out, c)
	}
	return out
}

// isStale: q comes from a source the down track has switched away from.
func (d *DownTrack) isStale(q queued) bool { return d.sw != nil && q.src != d.src.Load() }

// switchOut runs on the writer shard when the source or the binding
// of the packet about to be written differs from the last one.
func (d *DownTrack) switchOut(s *source, b *binding, first *Packet) {
	defer func() { d.clock.Store(&outClock{track: s.track, tsOffset: d.out.tsOffset}) }()
	prev := d.out.src
	d.out.src, d.out.b = s, b
	d.out.pt, d.out.ok = b.pt, true
	if d.sw != nil {
		c, ok := matchCodec(s.track.codec, b.codecs)
		d.out.pt, d.out.ok = uint8(c.PayloadType), ok
		if !ok && s != prev {
			d.log.Warn().Str("codec", s.track.codec.MimeType).
				Msg("sfu: the subscriber did not negotiate the source's codec; no media")
		}
	}
	if s == prev || prev == nil && !d.out.wrote {
		return
	}
	// A new source: its sequence numbers and timestamps are unrelated to
	// the previous one's. The outgoing sequence continues where it was,
	// and the sent map (outgoing to source numbers) starts afresh so a NACK
	// is never answered with a packet of the previous source.
	d.seq.restart()
	d.history.reset()
	if d.out.wrote {
		clock := float64(s.track.codec.ClockRate)
		ticks := uint32(time.Since(d.out.lastAt).Seconds()*clock) + 1
		d.out.tsOffset = d.out.lastTS + ticks - first.header.Timestamp
	}
}

// restart forgets the source sequence so the next packet, from a new
// source, follows the last outgoing one directly.
func (r *seqRewriter) restart() {
	r.started = false
	r.resync = true
}
