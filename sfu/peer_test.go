package sfu

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

func TestEngineCandidatesOnlyPublicIP(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	require.NotZero(t, e.UDPAddr().Port)
	require.NotNil(t, e.TCPAddr())
	require.NotZero(t, e.TCPAddr().Port)

	tp := startPublisher(t, e, 0, false)
	sdp := tp.pc.RemoteDescription().SDP
	var udp, tcp int
	for _, line := range strings.Split(sdp, "\n") {
		if !strings.HasPrefix(line, "a=candidate:") {
			continue
		}
		f := strings.Fields(line)
		require.Equal(t, "127.0.0.1", f[4], "candidate %q", line)
		require.NotContains(t, line, ".local", "no mDNS candidates")
		if f[1] != "1" {
			continue // pion repeats each candidate for the RTCP component
		}
		switch strings.ToLower(f[2]) {
		case "udp":
			udp++
			require.Equal(t, e.UDPAddr().Port, atoi(t, f[5]))
		case "tcp":
			tcp++
			require.Equal(t, e.TCPAddr().Port, atoi(t, f[5]))
			require.Contains(t, line, "tcptype passive")
		}
	}
	require.Equal(t, 1, udp, "one UDP candidate: the shared socket")
	require.Equal(t, 1, tcp, "one passive ICE-TCP candidate")
	require.Contains(t, sdp, "a=recvonly")
	require.NotContains(t, sdp, "a=sendrecv")
}

func atoi(t *testing.T, s string) int {
	n := 0
	for _, c := range s {
		require.True(t, c >= '0' && c <= '9', s)
		n = n*10 + int(c-'0')
	}
	return n
}

func TestEngineTCPDisabled(t *testing.T) {
	t.Parallel()
	e, err := NewEngine(Config{PublicIP: "127.0.0.1", TCPPort: -1})
	require.NoError(t, err)
	require.Nil(t, e.TCPAddr())
	require.NoError(t, e.Close())
}

func TestEngineBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{PublicIP: "not-an-ip"},
		{PublicIP: "0.0.0.0"},
		{UDPPort: 70000},
		{TCPPort: -2},
		{PionLogLevel: "loud"},
	} {
		_, err := NewEngine(cfg)
		require.ErrorIs(t, err, ErrBadConfig, "%+v", cfg)
	}
}

func TestPublisherRejectsBadOffer(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	_, _, err := e.NewPublisher(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: "garbage"}, PublisherConfig{})
	require.ErrorIs(t, err, ErrBadSDP)
	_, _, err = e.NewPublisher(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: "v=0"}, PublisherConfig{})
	require.ErrorIs(t, err, ErrBadSDP)
	_, _, err = e.NewSubscriber(nil, SubscriberConfig{})
	require.ErrorIs(t, err, ErrNoTracks)
	require.Zero(t, e.Stats().Publishers)
}

// TestForwarding: several subscribers each receive at least 95% of the
// packets of both tracks, byte for byte.
func TestForwarding(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	tp := startPublisher(t, e, 30, true)
	video, audio := tp.waitTracks()
	require.Equal(t, StreamID("cam"), video.StreamID())
	require.Len(t, tp.pub.Tracks(), 2)

	subs := make([]*testSubscriber, 3)
	for i := range subs {
		subs[i] = startSubscriber(t, e, []*Track{video, audio}, true)
	}
	// Attaching happens between packets: send until everyone receives.
	require.Eventually(t, func() bool {
		tp.sendVideo()
		tp.sendAudio()
		for _, s := range subs {
			if len(s.packets(webrtc.RTPCodecTypeVideo)) == 0 || len(s.packets(webrtc.RTPCodecTypeAudio)) == 0 {
				return false
			}
		}
		return true
	}, waitFor, tick)

	const n = 300
	var firstV, firstA uint32
	for i := 0; i < n; i++ {
		v, a := tp.sendVideo(), tp.sendAudio()
		if i == 0 {
			firstV, firstA = v, a
		}
		time.Sleep(time.Millisecond) // pace like a real sender
	}
	for _, s := range subs {
		require.Eventually(t, func() bool {
			return countRange(s.packets(webrtc.RTPCodecTypeVideo), webrtc.RTPCodecTypeVideo, firstV, n) >= n*95/100 &&
				countRange(s.packets(webrtc.RTPCodecTypeAudio), webrtc.RTPCodecTypeAudio, firstA, n) >= n*95/100
		}, waitFor, tick)
		checkPayloads(t, s)
		requireShard(t, s.sub, false)
		requireDirect(t, s.sub.out, subReading(s.sub), true)
	}
	st := e.Stats()
	require.Equal(t, int64(2), st.Tracks)
	require.Equal(t, int64(3), st.Subscribers)
	require.Equal(t, int64(1), st.Publishers)
	require.GreaterOrEqual(t, st.PacketsForwarded, uint64(3*2*n*95/100))
	require.Greater(t, st.BytesOut, st.PacketsForwarded*80)
}

// countRange counts distinct indices in [first, first+n).
func countRange(got []received, kind webrtc.RTPCodecType, first uint32, n int) int {
	seen := map[uint32]bool{}
	for _, r := range got {
		if idx, ok := payloadIndex(kind, r.payload); ok && idx >= first && idx < first+uint32(n) {
			seen[idx] = true
		}
	}
	return len(seen)
}

// checkPayloads verifies every received payload byte for byte.
func checkPayloads(t *testing.T, s *testSubscriber) {
	t.Helper()
	for _, r := range s.packets(webrtc.RTPCodecTypeAudio) {
		idx, ok := payloadIndex(webrtc.RTPCodecTypeAudio, r.payload)
		require.True(t, ok)
		require.True(t, bytes.Equal(opusPayload(idx), r.payload), "audio %d differs", idx)
	}
	for _, r := range s.packets(webrtc.RTPCodecTypeVideo) {
		idx, ok := payloadIndex(webrtc.RTPCodecTypeVideo, r.payload)
		require.True(t, ok)
		want := vp8Payload(idx, IsKeyframe(webrtc.MimeTypeVP8, r.payload))
		require.True(t, bytes.Equal(want, r.payload), "video %d differs", idx)
	}
}

// TestLateSubscriberStartsOnCachedKeyframe: the publisher sends one
// keyframe and never another (it ignores PLIs), so a subscriber joining
// later can only start on a keyframe if it comes from the GOP cache; it
// then gets every following frame, none lost or repeated at the seam.
func TestLateSubscriberStartsOnCachedKeyframe(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	tp := startPublisher(t, e, 0, false)
	video, audio := tp.waitTracks()
	for i := 0; i < 40; i++ {
		tp.sendVideo()
	}
	stop := tp.stream(10 * time.Millisecond)
	defer stop()

	s := startSubscriber(t, e, []*Track{video, audio}, true)
	require.Eventually(t, func() bool { return len(s.packets(webrtc.RTPCodecTypeVideo)) >= 20 }, waitFor, tick)
	got := s.packets(webrtc.RTPCodecTypeVideo)
	require.True(t, IsKeyframe(webrtc.MimeTypeVP8, got[0].payload), "first video packet must be a keyframe")
	for i, r := range got[:20] {
		idx, ok := payloadIndex(webrtc.RTPCodecTypeVideo, r.payload)
		require.True(t, ok)
		require.Equal(t, uint32(i), idx, "frames from the cache then live, in order, none lost or repeated")
		require.Equal(t, got[0].seq+uint16(i), r.seq, "outgoing sequence numbers are contiguous")
	}
	require.Zero(t, tp.plis.Load(), "the join was served from the cache, without a PLI")
}

// TestPLIMergedToPublisher: a burst of PLIs from a subscriber reaches the
// publisher as one PLI.
func TestPLIMergedToPublisher(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	tp := startPublisher(t, e, 0, false)
	video, _ := tp.waitTracks()
	stop := tp.stream(10 * time.Millisecond)
	defer stop()
	s := startSubscriber(t, e, []*Track{video}, true)
	require.Eventually(t, func() bool { return s.ssrcOf(webrtc.RTPCodecTypeVideo) != 0 }, waitFor, tick)
	before := tp.plis.Load()
	require.Zero(t, before)

	ssrc := uint32(s.ssrcOf(webrtc.RTPCodecTypeVideo))
	for i := 0; i < 20; i++ {
		require.NoError(t, s.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}))
	}
	require.Eventually(t, func() bool { return tp.plis.Load() == 1 }, waitFor, tick)
	require.Never(t, func() bool { return tp.plis.Load() > 1 }, pliInterval+200*time.Millisecond, 20*time.Millisecond)
	require.Equal(t, uint64(1), e.Stats().KeyframeRequests)

	// After the interval a new request goes through again.
	require.NoError(t, s.pc.WriteRTCP([]rtcp.Packet{&rtcp.FullIntraRequest{MediaSSRC: ssrc,
		FIR: []rtcp.FIREntry{{SSRC: ssrc, SequenceNumber: 1}}}}))
	require.Eventually(t, func() bool { return tp.plis.Load() == 2 }, waitFor, tick)
	require.Positive(t, s.sub.out.received.Load(), "RTCP did not come the direct way")
}

// TestNACKServedFromBuffer: a subscriber NACKs a packet it has; the SFU
// resends it from the track's ring, same sequence number, same bytes.
func TestNACKServedFromBuffer(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	tp := startPublisher(t, e, 0, false)
	video, _ := tp.waitTracks()
	s := startSubscriber(t, e, []*Track{video}, false)
	require.Eventually(t, func() bool {
		tp.sendVideo()
		return len(s.packets(webrtc.RTPCodecTypeVideo)) >= 10
	}, waitFor, tick)
	got := s.packets(webrtc.RTPCodecTypeVideo)
	target := got[5]
	ssrc := uint32(s.ssrcOf(webrtc.RTPCodecTypeVideo))
	require.NoError(t, s.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{
		MediaSSRC: ssrc, Nacks: []rtcp.NackPair{{PacketID: target.seq}},
	}}))
	require.Eventually(t, func() bool {
		n := 0
		for _, r := range s.packets(webrtc.RTPCodecTypeVideo) {
			if r.seq == target.seq {
				require.Equal(t, target.payload, r.payload)
				n++
			}
		}
		return n == 2
	}, waitFor, tick)
	require.Equal(t, uint64(1), e.Stats().NACKsServed)
	require.Positive(t, s.sub.out.received.Load(), "RTCP did not come the direct way")
}

// TestCloseEndsEverything: closing the publisher ends its tracks and
// detaches sinks; closing the engine closes the rest; gauges return to 0.
func TestCloseEndsEverything(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	tp := startPublisher(t, e, 0, false)
	video, audio := tp.waitTracks()
	s := startSubscriber(t, e, []*Track{video, audio}, true)
	require.Eventually(t, func() bool {
		tp.sendVideo()
		tp.sendAudio()
		return video.SinkCount() == 1 && audio.SinkCount() == 1
	}, waitFor, tick)

	require.NoError(t, tp.pub.Close())
	for _, tr := range []*Track{video, audio} {
		select {
		case <-tr.Done():
		default:
			t.Fatalf("track %s not done after Close", tr.ID())
		}
		require.Zero(t, tr.SinkCount())
	}
	require.Zero(t, e.Stats().Tracks)
	require.Zero(t, e.Stats().Publishers)
	video.AddSink(s.sub.DownTracks()[0]) // adding to an ended track is a no-op
	require.Zero(t, video.SinkCount())

	require.NoError(t, e.Close())
	require.Zero(t, e.Stats().Subscribers)
	_, _, err := e.NewSubscriber([]*Track{video}, SubscriberConfig{})
	require.ErrorIs(t, err, ErrClosed)
}

// TestRemoteCloseCallsOnClose: when the client closes its side the
// publisher notices and calls OnClose once.
func TestRemoteCloseCallsOnClose(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	tp := startPublisher(t, e, 0, false)
	video, _ := tp.waitTracks()
	closed := make(chan struct{})
	s := startSubscriberWith(t, e, []*Track{video}, true, SubscriberConfig{OnClose: func() { close(closed) }})
	require.NoError(t, s.pc.Close())
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("OnClose not called after the client closed")
	}
	require.Eventually(t, func() bool { return e.Stats().Subscribers == 0 }, waitFor, tick)
}

// TestICETCPFallback: a client that cannot use UDP reaches the engine over
// its one ICE-TCP port and gets media through.
func TestICETCPFallback(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	tp := startPublisher(t, e, 10, true)
	video, audio := tp.waitTracks()

	me, se := clientParts(t)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	got := make(chan struct{}, 1)
	var wg sync.WaitGroup
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		wg.Add(1)
		defer wg.Done()
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			select {
			case got <- struct{}{}:
			default:
			}
		}
	})
	sub, offer, err := e.NewSubscriber([]*Track{video, audio}, SubscriberConfig{})
	require.NoError(t, err)
	require.NoError(t, pc.SetRemoteDescription(offer))
	answer, err := pc.CreateAnswer(nil)
	require.NoError(t, err)
	require.NoError(t, sub.SetAnswer(gatheredDescription(t, pc, answer)))
	waitConnected(t, pc)
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	require.NoError(t, err)
	require.Equal(t, webrtc.ICEProtocolTCP, pair.Local.Protocol)
	require.Eventually(t, func() bool {
		tp.sendVideo()
		tp.sendAudio()
		select {
		case <-got:
			return true
		default:
			return false
		}
	}, waitFor, tick)
	requireShard(t, sub, true)
	requireDirect(t, sub.out, subReading(sub), false)
	require.NoError(t, sub.Close())
	require.NoError(t, pc.Close())
	wg.Wait()
}

// requireDirect checks how a connected subscriber's media goes: sealed
// into the shared socket's batches over UDP, with its RTCP taken off the
// socket and no RTCP reader running; through pion over ICE-TCP, where the
// readers run.
func requireDirect(t *testing.T, o *directOut, reading, direct bool) {
	t.Helper()
	if direct {
		require.Positive(t, o.sent.Load(), "no packet went the direct way")
		require.False(t, reading, "RTCP readers run")
	} else {
		require.Zero(t, o.sent.Load(), "packets went the direct way")
		require.True(t, reading, "no RTCP reader runs")
	}
}

func subReading(s *Subscriber) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reading
}

// requireShard checks where a connected subscriber's down tracks are
// written: over UDP on one of the engine's shared writer shards, over TCP
// on a shard of their own, whose writes may wait for the student's TCP
// window without holding up anyone else, with longer queues.
func requireShard(t *testing.T, s *Subscriber, own bool) {
	t.Helper()
	s.mu.Lock()
	sh := s.ownShard
	s.mu.Unlock()
	shared := func(sh *writerShard) bool {
		for _, p := range s.e.writers.shards {
			if p == sh {
				return true
			}
		}
		return false
	}
	if !own {
		require.Nil(t, sh)
		for _, d := range s.DownTracks() {
			require.True(t, shared(d.shard.Load()), "a shared writer shard")
			require.Equal(t, queueSize(d.kind), cap(d.queue))
		}
		return
	}
	require.NotNil(t, sh)
	require.False(t, shared(sh), "a writer shard of its own")
	for _, d := range s.DownTracks() {
		require.Same(t, sh, d.shard.Load())
		require.Equal(t, queueSize(d.kind)*tcpQueueFactor, cap(d.queue), "a longer queue over TCP")
	}
}

func queueSize(kind webrtc.RTPCodecType) int {
	if kind == webrtc.RTPCodecTypeVideo {
		return queueSizeVideo
	}
	return queueSizeAudio
}
