package sfu

// Lock order (see also LOCKS.md): Track.mu is taken by AddSink, RemoveSink
// and by the reader goroutine when it applies pending attaches. While
// holding it the track may call Sink.Deliver (priming a new sink with the
// cached GOP), which only does non-blocking work, and never takes another
// sfu lock. retransmitRing.mu is a leaf lock.

import (
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// pliInterval merges keyframe requests: at most one PLI per track per
// interval goes to the publisher. Every PLI makes the encoder send a large
// keyframe (RFC 4585 6.3.1), so a class of students on a lossy link must
// not turn into a keyframe storm on the teacher's uplink.
const pliInterval = 500 * time.Millisecond

// Sink takes a track's packets. Deliver is called from the track's reader
// goroutine and must never block; a sink that keeps p calls p.Retain and
// later p.Release. Sinks are compared with ==, so a Sink must be a
// comparable value (in practice a pointer).
type Sink interface {
	Deliver(p *Packet)
}

// rtpReader is the source of a track's packets (a *webrtc.TrackRemote).
type rtpReader interface {
	Read(b []byte) (int, interceptor.Attributes, error)
}

// Track is one published track with its single reader goroutine, its
// retransmission buffer and its cached group of pictures.
type Track struct {
	id       TrackID
	streamID StreamID
	kind     webrtc.RTPCodecType
	codec    webrtc.RTPCodecParameters
	ssrc     uint32
	isKey    keyframeFunc
	log      zerolog.Logger
	stats    *counters
	pool     *packetPool
	src      rtpReader
	rtcp     func([]rtcp.Packet) error
	ring     *retransmitRing
	gop      *gopCache // nil for audio
	frames   frameEnds // the reader's
	epoch    time.Time
	// profiled is closed once codec is final. An H.264 publisher whose
	// offer states no profile has it learned from the stream's SPS
	// (learnProfile, by the reader until then): nobody else reads codec
	// before profiled is closed.
	profiled chan struct{}
	learning bool // the reader's

	// sinks is the copy-on-write fan-out set: the reader loads it once per
	// packet without a lock; writers replace the slice under mu.
	sinks   atomic.Pointer[[]Sink]
	pending atomic.Bool // adds is non-empty; checked by the reader per packet
	lastPLI atomic.Int64
	pli     chan struct{}                // a PLI for keyLoop to send; one slot
	sr      atomic.Pointer[senderReport] // latest RTCP SR from the publisher
	// recv is the RTP timestamp of the newest frame and when its first
	// packet arrived (recvClock); recvTS and recvSeen are the reader's.
	recv     atomic.Uint64
	recvOK   atomic.Bool
	recvTS   uint32
	recvSeen bool

	mu    sync.Mutex
	adds  []Sink
	ended bool

	done chan struct{}
}

// trackParams are what a Track is built from.
type trackParams struct {
	id       TrackID
	streamID StreamID
	codec    webrtc.RTPCodecParameters
	kind     webrtc.RTPCodecType
	ssrc     uint32
	src      rtpReader
	rtcp     func([]rtcp.Packet) error
	log      zerolog.Logger
	stats    *counters
	pool     *packetPool
}

func newTrack(p trackParams) *Track {
	t := &Track{
		id: p.id, streamID: p.streamID, kind: p.kind, codec: p.codec, ssrc: p.ssrc,
		log: p.log, stats: p.stats, pool: p.pool, src: p.src, rtcp: p.rtcp,
		epoch: time.Now(), done: make(chan struct{}), pli: make(chan struct{}, 1),
		profiled: make(chan struct{}),
	}
	if strings.EqualFold(p.codec.MimeType, webrtc.MimeTypeH264) && !hasProfile(p.codec.SDPFmtpLine) {
		t.learning = true
	} else {
		close(t.profiled)
	}
	if t.kind == webrtc.RTPCodecTypeVideo {
		t.isKey = keyframeDetector(p.codec.MimeType)
		t.ring = newRetransmitRing(ringSizeVideo)
		t.gop = newGOPCache()
	} else {
		t.ring = newRetransmitRing(ringSizeAudio)
	}
	empty := []Sink{}
	t.sinks.Store(&empty)
	t.stats.tracks.Add(1)
	return t
}

// ID is unique within the engine.
func (t *Track) ID() TrackID { return t.id }

// StreamID is the stream (publisher peer connection) the track belongs to.
func (t *Track) StreamID() StreamID { return t.streamID }

// Kind is audio or video.
func (t *Track) Kind() webrtc.RTPCodecType { return t.kind }

// Codec is the negotiated codec of the publisher; for H.264 its format
// parameters always state the stream's profile (learnProfile).
func (t *Track) Codec() webrtc.RTPCodecParameters { return t.codec }

// Done is closed when the track ends.
func (t *Track) Done() <-chan struct{} { return t.done }

// AddSink starts delivering packets to s. A video sink is primed with the
// cached packets since the last keyframe, so it starts on a keyframe.
//
// The attach is applied by the reader goroutine between two packets, so a
// sink sees the cached GOP and then the live stream with no packet lost or
// repeated in between. Adding a sink to an ended track does nothing.
func (t *Track) AddSink(s Sink) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	t.adds = append(t.adds, s)
	t.pending.Store(true)
}

// RemoveSink stops delivering packets to s. A Deliver already in progress
// on the reader goroutine may still reach s once after RemoveSink returns.
func (t *Track) RemoveSink(s Sink) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, a := range t.adds {
		if a == s {
			t.adds = append(t.adds[:i:i], t.adds[i+1:]...)
			break
		}
	}
	cur := *t.sinks.Load()
	next := make([]Sink, 0, len(cur))
	for _, c := range cur {
		if c != s {
			next = append(next, c)
		}
	}
	if len(next) != len(cur) {
		t.sinks.Store(&next)
	}
}

// senderReport is the wall clock <-> RTP timestamp pair of an RTCP Sender
// Report (RFC 3550 6.4.1).
type senderReport struct {
	ntp   time.Time
	rtpTS uint32
}

// ntpEpochOffset is the number of seconds from the NTP epoch (1900) to the
// Unix epoch (1970).
const ntpEpochOffset = 2208988800

// ntpToTime converts a 64-bit NTP timestamp (RFC 3550 4: seconds since 1900
// in the high word, fraction in the low word) to a time.Time.
func ntpToTime(ntp uint64) time.Time {
	sec := int64(ntp>>32) - ntpEpochOffset
	frac := (ntp & 0xffffffff) * 1e9 >> 32
	return time.Unix(sec, int64(frac))
}

// setSenderReport stores the mapping of an SR about this track's SSRC.
func (t *Track) setSenderReport(sr *rtcp.SenderReport) {
	if sr.SSRC != t.ssrc {
		return
	}
	t.sr.Store(&senderReport{ntp: ntpToTime(sr.NTPTime), rtpTS: sr.RTPTime})
}

// SenderReport is the publisher's latest RTCP Sender Report for the track:
// the sender's wall clock (NTP) time that corresponds to RTP timestamp
// rtpTS (RFC 3550 6.4.1). Tracks of one publisher share that clock, so a
// recorder aligns audio and video with it. ok is false before the first SR.
func (t *Track) SenderReport() (ntp time.Time, rtpTS uint32, ok bool) {
	sr := t.sr.Load()
	if sr == nil {
		return time.Time{}, 0, false
	}
	return sr.ntp, sr.rtpTS, true
}

// recvUnitShift sets the resolution of recv's arrival time: 2^14 ns, about
// 16 µs, so 32 bits cover 19 hours between two frames.
const recvUnitShift = 14

// noteArrival records when the first packet of a new frame arrived, as
// pion's report interceptor did for the send side: later packets of a
// frame only say how long the frame took to arrive.
func (t *Track) noteArrival(ts uint32, now int64) {
	if t.recvSeen && ts == t.recvTS {
		return
	}
	t.recvSeen, t.recvTS = true, ts
	t.recv.Store(uint64(ts)<<32 | uint64(uint32(now>>recvUnitShift)))
	t.recvOK.Store(true)
}

// recvClock is the track's RTP time at now by this server's clock: the
// newest frame's timestamp plus the time since it arrived. ok is false
// before the first packet. It stands in for the publisher's clock
// (SenderReport) while the publisher has sent no report.
func (t *Track) recvClock(now time.Time) (rtpTS uint32, ok bool) {
	if !t.recvOK.Load() {
		return 0, false
	}
	v := t.recv.Load()
	nowUnits := uint32(int64(now.Sub(t.epoch)+1) >> recvUnitShift)
	elapsed := time.Duration(nowUnits-uint32(v)) << recvUnitShift
	return uint32(v>>32) + uint32(int64(elapsed.Seconds()*float64(t.codec.ClockRate))), true
}

// SinkCount is the number of sinks receiving packets now.
func (t *Track) SinkCount() int { return len(*t.sinks.Load()) }

// RequestKeyframe asks the publisher for a keyframe; requests are merged
// and rate-limited.
//
// A request within pliInterval of the last PLI is dropped: the keyframe
// that PLI asked for serves it too. Requesters that still lack a keyframe
// ask again (browsers repeat PLIs, and a down track waiting for a keyframe
// asks on every packet it skips), so no request is lost for long.
func (t *Track) RequestKeyframe() {
	if t.kind != webrtc.RTPCodecTypeVideo || t.isDone() {
		return
	}
	now := t.now()
	last := t.lastPLI.Load()
	if last != 0 && now-last < int64(pliInterval) {
		return
	}
	if !t.lastPLI.CompareAndSwap(last, now) {
		return // a concurrent request won the slot
	}
	select {
	case t.pli <- struct{}{}:
	default: // one is waiting to be sent: it serves this request too
	}
}

// keyLoop sends the PLIs RequestKeyframe asks for. Requests come from the
// shared socket's reader (a student's PLI, direct.go), track readers and
// writer shards, none of which may wait for the publisher's connection:
// over ICE-TCP its write waits for the teacher's TCP window.
func (t *Track) keyLoop() {
	for {
		select {
		case <-t.pli:
			// RFC 4585 6.3.1: the PLI names the publisher's media SSRC.
			if err := t.rtcp([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: t.ssrc}}); err != nil {
				t.log.Debug().Err(err).Msg("sending PLI")
				continue
			}
			t.stats.keyframeRequests.Add(1)
		case <-t.done:
			return
		}
	}
}

// now is monotonic nanoseconds since the track started, never zero.
func (t *Track) now() int64 { return int64(time.Since(t.epoch)) + 1 }

func (t *Track) isDone() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// run is the track's one reader goroutine: it reads each packet into a
// pooled buffer and hands it to handle. It returns when the source fails
// (the peer connection closed).
func (t *Track) run() {
	defer t.end()
	for {
		p := t.pool.get()
		n, _, err := t.src.Read(p.buf[:])
		if errors.Is(err, io.ErrShortBuffer) {
			// Larger than any packet pion accepts (its receive MTU is
			// smaller than the buffer): drop it, keep the track.
			p.Release()
			t.stats.packetsDropped.Add(1)
			continue
		}
		if err != nil {
			p.Release()
			return
		}
		if err := p.parse(n); err != nil {
			p.Release()
			t.stats.packetsDropped.Add(1)
			continue
		}
		p.arrival = time.Now()
		t.handle(p, t.now())
		p.Release()
	}
}

// handle processes one packet on the reader goroutine: pending attaches
// first (so they see this packet live), then the retransmit ring, the GOP
// cache and the fan-out.
func (t *Track) handle(p *Packet, now int64) {
	if t.isKey != nil {
		p.keyframe = t.isKey(p.payload)
	}
	p.endsFrame = t.kind != webrtc.RTPCodecTypeVideo || t.frames.ends(&p.header)
	t.noteArrival(p.header.Timestamp, now)
	if t.learning {
		t.learnProfile(p.payload, now)
	}
	t.stats.packetsIn.Add(1)
	t.stats.bytesIn.Add(uint64(p.size))
	if t.pending.Load() {
		t.applyPending(p)
	}
	t.ring.put(p)
	if t.gop != nil {
		t.gop.add(p, now)
	}
	for _, s := range *t.sinks.Load() {
		s.Deliver(p)
	}
}

// applyPending attaches the sinks added since the last packet, priming
// video sinks with the cached GOP. next is the packet about to be fanned
// out: when it starts a new keyframe the old GOP is not worth sending.
func (t *Track) applyPending(next *Packet) {
	needKeyframe := false
	t.mu.Lock()
	t.pending.Store(false)
	adds := t.adds
	t.adds = nil
	cur := *t.sinks.Load()
	all := make([]Sink, 0, len(cur)+len(adds))
	all = append(all, cur...)
	for _, s := range adds {
		if t.gop != nil && !t.startsGOP(next) && !t.gop.prime(s) {
			needKeyframe = true
		}
		all = append(all, s)
	}
	t.sinks.Store(&all)
	t.mu.Unlock()
	if needKeyframe {
		t.RequestKeyframe()
	}
}

// profileWait bounds how long a track whose offer stated no H.264 profile
// waits for the stream's SPS before it is published anyway.
const profileWait = int64(5 * time.Second)

// learnProfile runs on the reader while the publisher's H.264 profile is
// unknown. RFC 6184 8.1 would read an absent profile-level-id as
// baseline, but publishers that leave it out (GStreamer's webrtcbin, some
// encoder boxes) send any profile: the SPS says which, and viewers are
// matched on it. Without an SPS in time the track is published as
// constrained baseline, which every WebRTC decoder takes.
func (t *Track) learnProfile(payload []byte, now int64) {
	plid, ok := spsProfile(payload)
	if !ok {
		if now < profileWait {
			return
		}
		plid = "42e01f"
	}
	t.codec.SDPFmtpLine = withProfile(t.codec.SDPFmtpLine, plid)
	t.learning = false
	t.log.Debug().Str("track", string(t.id)).Str("fmtp", t.codec.SDPFmtpLine).Msg("sfu: H.264 profile learned from the stream")
	close(t.profiled)
}

// startsGOP reports whether p begins a new keyframe (and so a new GOP).
func (t *Track) startsGOP(p *Packet) bool {
	return p.keyframe && (!t.gop.active || p.header.Timestamp != t.gop.startTS)
}

// end runs when the reader stops: sinks are detached and buffers freed.
func (t *Track) end() {
	t.mu.Lock()
	t.ended = true
	t.adds = nil
	empty := []Sink{}
	t.sinks.Store(&empty)
	t.mu.Unlock()
	t.ring.clear()
	if t.gop != nil {
		t.gop.reset()
	}
	t.stats.tracks.Add(-1)
	close(t.done)
}

// retransmit returns the stored packet seq (with a reference the caller
// releases), or nil.
func (t *Track) retransmit(seq uint16) *Packet { return t.ring.get(seq) }
