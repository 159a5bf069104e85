package sfu

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// recordingWriter is a webrtc.TrackLocalWriter that records what a down
// track writes. With block set, WriteRTP waits until block is closed: a
// subscriber whose network is stuck.
type recordingWriter struct {
	block chan struct{}
	mu    sync.Mutex
	seqs  []uint16
	idx   []uint32
	keys  []bool
	ssrc  []uint32
	at    []time.Time
}

func (w *recordingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if w.block != nil {
		<-w.block
	}
	idx, _ := payloadIndex(webrtc.RTPCodecTypeVideo, payload)
	w.mu.Lock()
	w.seqs = append(w.seqs, h.SequenceNumber)
	w.idx = append(w.idx, idx)
	w.keys = append(w.keys, IsKeyframe(webrtc.MimeTypeVP8, payload))
	w.ssrc = append(w.ssrc, h.SSRC)
	w.at = append(w.at, time.Now())
	w.mu.Unlock()
	return len(payload), nil
}

func (w *recordingWriter) Write(b []byte) (int, error) { return len(b), nil }

func (w *recordingWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seqs)
}

// testTrack is a video Track fed by the test goroutine (standing in for
// the reader) with a PLI counter in place of the publisher.
type testTrack struct {
	*Track
	plis  atomic.Int32
	stats *counters
	seq   uint16
	idx   uint32
	shard *writerShard
}

func newTestTrack(kind webrtc.RTPCodecType) *testTrack {
	tt := &testTrack{stats: &counters{}}
	codec := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}
	if kind == webrtc.RTPCodecTypeAudio {
		codec = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}
	}
	tt.Track = newTrack(trackParams{
		id: "t", streamID: "s", codec: codec, kind: kind, ssrc: 42,
		rtcp: func(pkts []rtcp.Packet) error {
			if _, ok := pkts[0].(*rtcp.PictureLossIndication); ok {
				tt.plis.Add(1)
			}
			return nil
		},
		log: zerolog.Nop(), stats: tt.stats, pool: newPacketPool(),
	})
	go tt.keyLoop() // ends with the track (stop)
	return tt
}

// requirePLIs waits until the publisher has been sent want PLIs in all.
// None (want 0) is checked where they are decided: no request got through
// the rate limit.
func requirePLIs(t *testing.T, tt *testTrack, want int32, msg string) {
	t.Helper()
	if want == 0 {
		require.Zero(t, tt.lastPLI.Load(), msg)
		require.Zero(t, tt.plis.Load(), msg)
		return
	}
	require.Eventually(t, func() bool { return tt.plis.Load() == want }, waitFor, time.Millisecond, msg)
}

// feed pushes n video frames (one packet each) through the track's
// per-packet path; frames whose index is a multiple of keyEvery are
// keyframes.
func (tt *testTrack) feed(t testing.TB, n int, keyEvery uint32) {
	for i := 0; i < n; i++ {
		tt.seq++
		raw, err := (&rtp.Packet{
			Header:  rtp.Header{Version: 2, Marker: true, PayloadType: 100, SequenceNumber: tt.seq, Timestamp: tt.idx * 3000, SSRC: 42},
			Payload: vp8Payload(tt.idx, tt.idx%keyEvery == 0),
		}).Marshal()
		require.NoError(t, err)
		p := tt.pool.get()
		require.NoError(t, p.parse(copy(p.buf[:], raw)))
		tt.handle(p, tt.now())
		p.Release()
		tt.idx++
	}
}

func (tt *testTrack) stop() { tt.end() }

// startDownTrack binds a down track to w and writes it on the test
// track's shared writer shard, as the down tracks of UDP subscribers are.
func startDownTrack(t testing.TB, tt *testTrack, w *recordingWriter, ssrc uint32) *DownTrack {
	if tt.shard == nil {
		tt.shard = newTestShard(t)
	}
	return startDownTrackOn(t, tt, tt.shard, w, ssrc)
}

// startDownTrackOn is startDownTrack on shard sh.
func startDownTrackOn(t testing.TB, tt *testTrack, sh *writerShard, w *recordingWriter, ssrc uint32) *DownTrack {
	d := newDownTrack(tt.Track, tt.stats, zerolog.Nop())
	d.binding.Store(&binding{id: "b", ssrc: ssrc, pt: 96, w: w})
	d.setShard(sh)
	t.Cleanup(d.stop) // before the shard stops: cleanups run last first
	tt.AddSink(d)
	return d
}

// newTestShard starts a writer shard that stops when the test ends, after
// releasing what its down tracks hold.
func newTestShard(t testing.TB) *writerShard {
	sh := startWriterShard(nil)
	t.Cleanup(sh.stop)
	return sh
}

// TestStuckSubscriberDoesNotSlowOthers: one subscriber's writer blocks
// (a student over ICE-TCP whose window is full: such down tracks have a
// writer shard of their own); the track's reader never waits for it, the
// other subscriber gets every packet, the stuck one's drops are counted,
// and it asks for a keyframe only once it can take one. Once unstuck it
// resumes on a keyframe with contiguous sequence numbers.
func TestStuckSubscriberDoesNotSlowOthers(t *testing.T) {
	t.Parallel()
	tt := newTestTrack(webrtc.RTPCodecTypeVideo)
	defer tt.stop()
	fastW := &recordingWriter{}
	stuckW := &recordingWriter{block: make(chan struct{})}
	fast := startDownTrackOn(t, tt, newTestShard(t), fastW, 1)
	stuck := startDownTrackOn(t, tt, newTestShard(t), stuckW, 2)

	const total, batch = 3000, 100
	for fed := 0; fed < total; fed += batch {
		tt.feed(t, batch, 700)
		require.Eventually(t, func() bool { return fastW.count() == fed+batch }, waitFor, time.Millisecond)
	}
	require.Zero(t, fast.Dropped())
	require.Equal(t, uint64(total), fast.Forwarded())
	require.GreaterOrEqual(t, stuck.Dropped(), uint64(total-queueSizeVideo-2))
	require.Equal(t, stuck.Dropped(), tt.stats.packetsDropped.Load(), "drops reach the engine counters")
	requirePLIs(t, tt, 0, "a stuck subscriber must not drive keyframe requests")

	close(stuckW.block) // the network recovers
	require.Eventually(t, func() bool { return len(stuck.queue) == 0 }, waitFor, time.Millisecond)
	tt.feed(t, 1, 700) // a delta frame: the drained subscriber now asks for a keyframe
	requirePLIs(t, tt, 1, "the drained subscriber asks for a keyframe")
	// Fed in batches both writers drain, as a real publisher paces its
	// packets: a burst longer than the queue would drop by design (and a
	// busy machine starving the recovered writer's goroutine would make
	// one).
	for fed := 1; fed < 1200; fed += batch {
		n := min(batch, 1200-fed)
		tt.feed(t, n, 700)
		require.Eventually(t, func() bool { return fastW.count() == total+fed+n && len(stuck.queue) == 0 },
			waitFor, time.Millisecond)
	}
	require.Eventually(t, func() bool {
		stuckW.mu.Lock()
		defer stuckW.mu.Unlock()
		n := len(stuckW.idx)
		return n > 0 && stuckW.idx[n-1] == uint32(total+1200-1)
	}, waitFor, time.Millisecond)

	for _, w := range []*recordingWriter{fastW, stuckW} {
		w.mu.Lock()
		for i := 1; i < len(w.seqs); i++ {
			require.Equal(t, w.seqs[i-1]+1, w.seqs[i], "outgoing seqs contiguous at %d", i)
			if w.idx[i] != w.idx[i-1]+1 {
				require.True(t, w.keys[i], "after a skip the stream resumes on a keyframe (at %d)", i)
			}
		}
		require.True(t, w.keys[0], "video starts on a keyframe")
		w.mu.Unlock()
	}
	require.Equal(t, uint32(1), fastW.ssrc[0], "SSRC comes from the binding")
}

// TestPLIRateLimit: requests within pliInterval merge into one PLI.
func TestPLIRateLimit(t *testing.T) {
	t.Parallel()
	tt := newTestTrack(webrtc.RTPCodecTypeVideo)
	defer tt.stop()
	for i := 0; i < 100; i++ {
		tt.RequestKeyframe()
	}
	requirePLIs(t, tt, 1, "100 requests make one PLI")
	require.Eventually(t, func() bool { return tt.stats.keyframeRequests.Load() == 1 }, waitFor, time.Millisecond)
	tt.lastPLI.Store(tt.now() - int64(pliInterval)) // as if the interval had passed
	tt.RequestKeyframe()
	requirePLIs(t, tt, 2, "a request after the interval")

	audio := newTestTrack(webrtc.RTPCodecTypeAudio)
	defer audio.stop()
	audio.RequestKeyframe()
	requirePLIs(t, audio, 0, "audio has no keyframes to ask for")
}

// TestJoinWithoutCachedKeyframeRequestsOne: a video sink attached before
// any keyframe is cached triggers a PLI and waits for the keyframe.
func TestJoinWithoutCachedKeyframeRequestsOne(t *testing.T) {
	t.Parallel()
	tt := newTestTrack(webrtc.RTPCodecTypeVideo)
	defer tt.stop()
	tt.idx = 1 // start on a delta frame: nothing to cache
	w := &recordingWriter{}
	d := startDownTrack(t, tt, w, 7)
	tt.feed(t, 10, 50)
	requirePLIs(t, tt, 1, "one PLI for the joiner")
	require.Zero(t, w.count())
	require.Equal(t, uint64(10), d.Dropped())
	tt.idx = 50 // the publisher answers with a keyframe
	tt.feed(t, 5, 50)
	require.Eventually(t, func() bool { return w.count() == 5 }, waitFor, time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	require.True(t, w.keys[0])
}

// TestRemoveSinkStopsDelivery: a removed sink gets nothing more, even one
// whose attach was still pending.
func TestRemoveSinkStopsDelivery(t *testing.T) {
	t.Parallel()
	tt := newTestTrack(webrtc.RTPCodecTypeVideo)
	defer tt.stop()
	w1, w2 := &recordingWriter{}, &recordingWriter{}
	d1 := startDownTrack(t, tt, w1, 1)
	tt.feed(t, 3, 50)
	require.Equal(t, 1, tt.SinkCount())
	d2 := startDownTrack(t, tt, w2, 2) // pending until the next packet
	tt.RemoveSink(d2)
	tt.RemoveSink(d1)
	tt.feed(t, 3, 50)
	require.Zero(t, tt.SinkCount())
	require.Eventually(t, func() bool { return w1.count() == 3 }, waitFor, time.Millisecond)
	require.Zero(t, w2.count())
}

// TestPrimeLongerThanQueue: a cached GOP longer than the down track's
// queue reaches a new subscriber whole, as one queue entry, followed by
// the live stream with contiguous sequence numbers and nothing dropped,
// even when the writer cannot send until after the live packets arrive.
func TestPrimeLongerThanQueue(t *testing.T) {
	t.Parallel()
	tt := newTestTrack(webrtc.RTPCodecTypeVideo)
	defer tt.stop()
	gop := 2*queueSizeVideo + 1
	tt.feed(t, gop, 100000) // one keyframe, then deltas: one long GOP
	w := &recordingWriter{block: make(chan struct{})}
	d := startDownTrack(t, tt, w, 7)
	const live = queueSizeVideo / 2
	tt.feed(t, live, 100000) // the first applies the attach: prime, then live
	dropped := d.Dropped()
	close(w.block)
	require.Zero(t, dropped, "the GOP fits although it is longer than the queue")
	require.Eventually(t, func() bool { return w.count() == gop+live }, waitFor, time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	require.True(t, w.keys[0], "the subscriber starts on the keyframe")
	for i := range w.seqs {
		require.Equal(t, uint32(i), w.idx[i], "packet %d in order", i)
		require.Equal(t, w.seqs[0]+uint16(i), w.seqs[i], "contiguous sequence at %d", i)
	}
	require.Zero(t, d.Dropped())
}

// TestPrimePaced: a primed GOP reaches a late joiner whole and in order,
// but not at once: after the first burst, which carries the keyframe, the
// rest is spread at primeRate so a join burst does not overflow the
// students' buffers. Only a lower bound on the spread is asserted: a slow
// machine can only make it longer.
func TestPrimePaced(t *testing.T) {
	t.Parallel()
	tt := newTestTrack(webrtc.RTPCodecTypeVideo)
	defer tt.stop()
	const gop = 400
	tt.feed(t, gop, 100000)
	w := &recordingWriter{}
	startDownTrack(t, tt, w, 7)
	tt.feed(t, 1, 100000) // applies the attach: the GOP, then this packet
	require.Eventually(t, func() bool { return w.count() == gop+1 }, waitFor, time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.idx {
		require.Equal(t, uint32(i), w.idx[i], "packet %d in order", i)
	}
	size := len(vp8Payload(1, false))
	paced := gop*size - primeFirstBurst - primeBurst
	least := time.Duration(paced) * 8 * time.Second / primeRate
	require.GreaterOrEqual(t, w.at[gop-1].Sub(w.at[0]), least)
}

// TestStaleGOPNotPaced: a GOP queued for a source a viewer has switched
// away from is dropped at once, not paced: the new source's keyframe
// leaves in the same turn.
func TestStaleGOPNotPaced(t *testing.T) {
	t.Parallel()
	first, second := newTestTrack(webrtc.RTPCodecTypeVideo), newTestTrack(webrtc.RTPCodecTypeVideo)
	defer first.stop()
	defer second.stop()
	first.feed(t, 200, 100000) // a long GOP, paced over several turns
	second.feed(t, 5, 100000)
	w := &recordingWriter{}
	d := newSwitchDownTrack(webrtc.RTPCodecTypeVideo, "v", "s", first.stats, zerolog.Nop())
	d.binding.Store(&binding{id: "b", ssrc: 5, pt: 96, w: w, codecs: []webrtc.RTPCodecParameters{first.codec}})
	sh := newWriterShard(nil) // run inline below
	d.setShard(sh)
	t.Cleanup(func() { d.stop(); sh.runReady() })
	d.setSource(first.Track)
	first.feed(t, 1, 100000) // applies the attach: the GOP is queued
	d.setSource(second.Track)
	second.feed(t, 1, 100000) // the new source's GOP is queued behind it
	for sh.runReady() {
	}
	require.Positive(t, w.count(), "the new source's keyframe goes in the first turn")
	w.mu.Lock()
	defer w.mu.Unlock()
	require.True(t, w.keys[0])
	require.Equal(t, uint32(0), w.idx[0], "the second source's GOP, from its keyframe")
}
