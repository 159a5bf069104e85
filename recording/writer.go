package recording

import (
	"bytes"
	"time"

	"github.com/at-wat/ebml-go/webm"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
)

const (
	// tickInterval paces the writer's housekeeping: keyframe requests
	// while waiting to start, idle flushes.
	tickInterval = 250 * time.Millisecond
	// interleaveWindow is how long a frame waits for the other track's
	// frames so blocks go out in time order. A track silent for longer is
	// not waited for.
	interleaveWindow = time.Second
	// preStartAudio bounds the audio kept while waiting for the first
	// video key frame.
	preStartAudio = 2 * time.Second
	// jitterPackets and jitterDelay bound the reordering the sample
	// builder waits for before it gives up on a missing packet and drops
	// the incomplete frame.
	jitterPackets = 128
	jitterDelay   = 400 * time.Millisecond
)

// inputState is the writer goroutine's state for one input.
type inputState struct {
	clock   clock
	sb      *samplebuilder.SampleBuilder
	waitKey bool // video: skip frames until a key frame
	lastSeq uint16
	pushed  bool
}

// drain makes the sample builder give up on packets still missing at the
// end, so the complete frames behind a loss are not left in it: a
// payload-less packet far in the future makes everything before it "too
// late" (the builder's time limit), and is itself dropped as no frame.
// (The builder's own Flush does the same at a cost that grows with the
// sequence space.)
func (st *inputState) drain() {
	if !st.pushed {
		return
	}
	ts := st.clock.lastTS + uint32(st.clock.rate)*2
	st.sb.Push(&rtp.Packet{Header: rtp.Header{SequenceNumber: st.lastSeq + 1, Timestamp: ts}})
}

func newInputState(spec codecSpec, rate uint32) inputState {
	sb := samplebuilder.New(jitterPackets, spec.newDepacketizer(), rate,
		samplebuilder.WithMaxTimeDelay(jitterDelay))
	return inputState{clock: newClock(rate, spec.video), sb: sb, waitKey: spec.video}
}

// frame is one depacketized frame on the timeline.
type frame struct {
	ns   int64 // unix ns
	key  bool
	data []byte
	in   *input
}

// writer is the recorder's one goroutine: queue -> jitter buffer and
// depacketizer -> timeline -> interleaver -> muxer.
type writer struct {
	r         *Recorder
	started   bool
	startNS   int64
	mux       *muxer
	fileTrack [2]int    // kind index (0 video, 1 audio) -> muxer track, -1: not in the file
	active    [2]*input // the input whose packets are being processed, per kind
	pending   [2][]frame
	lastMS    [2]int64
	wrote     [2]bool
	lastOut   int64 // ms of the last block written
	flushedMS int64
	activity  time.Time // last packet taken from the queue
	info      Info
	late      uint64 // frames dropped for arriving out of time order
}

func newWriter(r *Recorder) *writer {
	return &writer{r: r, fileTrack: [2]int{-1, -1}, activity: time.Now()}
}

func (w *writer) run() {
	defer close(w.r.done)
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		select {
		case it := <-w.r.queue:
			w.handle(it)
		case now := <-tick.C:
			w.tick(now)
		case <-w.r.stop:
			w.finish()
			return
		}
		if w.mux != nil {
			if err := w.mux.err(); err != nil {
				w.fail(err)
				return
			}
		}
	}
}

// handle takes one packet: timeline bookkeeping on every packet (so the
// clock sees arrivals and sender reports), then the jitter buffer.
func (w *writer) handle(it item) {
	in := it.in
	if !w.switchTo(in) {
		it.p.Release()
		return
	}
	w.activity = time.Now()
	st := &in.st
	if in.lost.Swap(false) && in.spec.video {
		st.waitKey = true
	}
	h := it.p.Header()
	ntp, srTS, ok := in.src.SenderReport()
	st.clock.observe(h.Timestamp, it.arrival, senderReport{ntp: ntp, rtpTS: srTS, ok: ok}, in.group)
	pkt := &rtp.Packet{
		Header:  rtp.Header{SequenceNumber: h.SequenceNumber, Timestamp: h.Timestamp, Marker: h.Marker},
		Payload: bytes.Clone(it.p.Payload()),
	}
	// h points into the pooled packet: once released, the track's reader
	// may fill it with the next one. Only the copy is read from here on.
	it.p.Release()
	if seq := pkt.SequenceNumber; !st.pushed || int16(seq-st.lastSeq) > 0 {
		st.lastSeq, st.pushed = seq, true
	}
	st.sb.Push(pkt)
	w.pop(in)
	w.emit(false)
}

// switchTo makes in the active input of its kind. Packets of a replaced
// input that were queued before the first packet of its successor are
// still written (they are older); after the switch they are stale. The
// replaced input's jitter buffer is emptied first.
func (w *writer) switchTo(in *input) bool {
	k := in.kindIndex()
	cur := w.active[k]
	if cur == in {
		return true
	}
	if cur != nil && !in.current.Load() {
		return false
	}
	if cur != nil {
		cur.st.drain()
		w.pop(cur)
	}
	w.active[k] = in
	return true
}

// pop takes the complete frames out of in's jitter buffer.
func (w *writer) pop(in *input) {
	for s := in.st.sb.Pop(); s != nil; s = in.st.sb.Pop() {
		w.sample(in, s)
	}
}

// sample places one frame on the timeline. Video after a loss (or a frame
// the depacketizer could not rebuild) waits for the next key frame: a
// frame that references a lost one would decode into garbage, so it is
// better not written.
func (w *writer) sample(in *input, s *media.Sample) {
	st := &in.st
	k := in.kindIndex()
	key := in.spec.isKey(s.Data)
	if in.spec.video {
		bad := in.spec.valid != nil && !in.spec.valid(s.Data)
		if s.PrevDroppedPackets > 0 || bad {
			st.waitKey = true
		}
		if st.waitKey && (!key || bad) {
			in.src.RequestKeyframe()
			return
		}
		st.waitKey = false
	}
	f := frame{ns: st.clock.at(s.PacketTimestamp), key: key, data: s.Data, in: in}
	if !w.started {
		w.beforeStart(k, f)
		return
	}
	if w.fileTrack[k] < 0 {
		return // this kind arrived after the file started: not in it
	}
	w.pending[k] = append(w.pending[k], f)
}

// beforeStart holds audio until the first video key frame starts the
// file (or starts it on audio when no video is attached).
func (w *writer) beforeStart(k int, f frame) {
	if k == 1 && w.r.current(0) != nil {
		p := append(w.pending[1], f)
		for len(p) > 0 && f.ns-p[0].ns > int64(preStartAudio) {
			p = p[1:]
		}
		w.pending[1] = p
		return
	}
	w.pending[k] = append(w.pending[k], f)
	w.start(k, f)
}

// start opens the file at frame f: a video key frame, or the first audio
// frame of an audio-only recording.
func (w *writer) start(k int, f frame) {
	var specs []codecSpec
	var entries []webm.TrackEntry
	allWebM := true
	for kind := range 2 {
		in := w.r.current(kind)
		if in == nil || (kind == 0 && k != 0) {
			continue
		}
		w.fileTrack[kind] = len(entries)
		specs = append(specs, in.spec)
		entries = append(entries, trackEntry(in.spec, uint64(len(entries)+1), f.data))
		allWebM = allWebM && in.spec.webm
	}
	path := w.r.path(allWebM)
	file, err := w.r.opts.create(path)
	if err != nil {
		w.fail(err)
		return
	}
	mux, err := newMuxer(file, muxConfig{
		tracks: entries, webm: allWebM, mainTrack: 1, audioOnly: k == 1,
		clusterMax: w.r.opts.ClusterInterval, cuesSpace: w.r.opts.CuesSpace,
		start: time.Unix(0, f.ns),
	}, w.r.opts.Sync)
	if err != nil {
		w.fail(err)
		return
	}
	w.mux, w.started, w.startNS = mux, true, f.ns
	w.info = w.r.baseInfo(path, time.Unix(0, f.ns).UTC(), specs)
	w.r.putCatalog(w.info)
	w.r.log.Info().Str("path", path).Msg("recording started")
}

// emit writes the pending frames that are ready, in time order. Unless
// force, a frame waits (at most interleaveWindow) until every file track
// has a frame pending, so the other track cannot still bring an earlier one.
func (w *writer) emit(force bool) {
	for w.started && w.mux != nil {
		k := w.next(force)
		if k < 0 {
			return
		}
		f := w.pending[k][0]
		w.pending[k][0] = frame{}
		w.pending[k] = w.pending[k][1:]
		w.write(k, f)
	}
}

// next is the kind whose head frame goes next, or -1.
func (w *writer) next(force bool) int {
	best, waiting := -1, false
	var newest int64
	for k := range 2 {
		if w.fileTrack[k] < 0 {
			continue
		}
		p := w.pending[k]
		if len(p) == 0 {
			waiting = true
			continue
		}
		newest = max(newest, p[len(p)-1].ns)
		if best < 0 || p[0].ns < w.pending[best][0].ns {
			best = k
		}
	}
	if best < 0 || (waiting && !force && newest-w.pending[best][0].ns < int64(interleaveWindow)) {
		return -1
	}
	return best
}

// write hands one frame to the muxer. Timestamps stay monotonic per
// track: a frame behind its track (a sender report moved the clock back,
// or it came later than the interleaving window) is dropped.
func (w *writer) write(k int, f frame) {
	ms := (f.ns - w.startNS + int64(time.Millisecond)/2) / int64(time.Millisecond)
	if ms < 0 {
		return // before the first key frame
	}
	if k != 0 && w.wrote[k] && ms == w.lastMS[k] {
		// Two audio frames on one millisecond (a sender report moved the
		// clock back a little): both are kept, in order, since decoders
		// and muxers refuse a timestamp that does not increase.
		ms++
	}
	if ms < w.lastOut || (w.wrote[k] && ms <= w.lastMS[k]) {
		w.late++
		if k == 0 {
			f.in.st.waitKey = true
		}
		return
	}
	if err := w.mux.write(w.fileTrack[k], f.key, ms, f.data); err != nil {
		return // run() sees the error and stops
	}
	w.lastOut, w.lastMS[k], w.wrote[k] = ms, ms, true
	if ms-w.flushedMS >= w.r.opts.ClusterInterval.Milliseconds() {
		w.mux.flush(ms)
		w.flushedMS = ms
	}
}

// tick does the housekeeping that must happen without packets.
func (w *writer) tick(now time.Time) {
	if !w.started {
		if in := w.r.current(0); in != nil {
			in.src.RequestKeyframe()
		}
	}
	// Force out frames held for interleaving only when the sender has
	// gone quiet: packets still waiting in the queue mean this goroutine
	// was starved (a busy machine), and forcing now would make the frames
	// behind them late and drop them.
	if now.Sub(w.activity) > interleaveWindow && len(w.r.queue) == 0 {
		w.emit(true)
	}
	if w.mux != nil && w.lastOut > w.flushedMS {
		w.mux.flush(w.lastOut)
		w.flushedMS = w.lastOut
	}
}
