package sfu

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

// testViewer is a pion client that offers to receive (the WHEP model).
type testViewer struct {
	pc     *webrtc.PeerConnection
	v      *Viewer
	mu     sync.Mutex
	pkts   map[webrtc.RTPCodecType][]rtp.Packet
	wg     sync.WaitGroup
	closed bool
}

// viewerAPI is a loopback pion client with only the given codecs, or the
// defaults when none are given.
func viewerAPI(t *testing.T, codecs ...webrtc.RTPCodecParameters) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if len(codecs) == 0 {
		require.NoError(t, me.RegisterDefaultCodecs())
	}
	for _, c := range codecs {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(c.MimeType, "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		require.NoError(t, me.RegisterCodec(c, kind))
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
}

// recvOffer makes a receive-only offer for the given kinds.
func recvOffer(t *testing.T, api *webrtc.API, kinds ...webrtc.RTPCodecType) (*webrtc.PeerConnection, webrtc.SessionDescription) {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	for _, k := range kinds {
		_, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		require.NoError(t, err)
	}
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	return pc, gatheredDescription(t, pc, offer)
}

func startViewer(t *testing.T, e *Engine) *testViewer {
	t.Helper()
	tv, _ := startViewerWith(t, e, func(sdp string) string { return sdp })
	return tv
}

// startViewerWith starts a viewer whose offer edit changes on its way to
// the engine, and returns it with the engine's answer.
func startViewerWith(t *testing.T, e *Engine, edit func(string) string) (*testViewer, string) {
	t.Helper()
	pc, offer := recvOffer(t, viewerAPI(t), webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo)
	offer.SDP = edit(offer.SDP)
	tv := &testViewer{pc: pc, pkts: map[webrtc.RTPCodecType][]rtp.Packet{}}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		tv.mu.Lock()
		if tv.closed {
			tv.mu.Unlock()
			return
		}
		tv.wg.Add(1)
		tv.mu.Unlock()
		defer tv.wg.Done()
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			tv.mu.Lock()
			tv.pkts[tr.Kind()] = append(tv.pkts[tr.Kind()], *pkt)
			tv.mu.Unlock()
		}
	})
	v, answer, err := e.NewViewer(offer, ViewerConfig{StreamID: "class"})
	require.NoError(t, err)
	tv.v = v
	t.Cleanup(func() {
		_ = v.Close()
		_ = pc.Close()
		tv.mu.Lock()
		tv.closed = true
		tv.mu.Unlock()
		tv.wg.Wait()
	})
	require.NoError(t, pc.SetRemoteDescription(answer))
	waitConnected(t, pc)
	return tv, answer.SDP
}

func (tv *testViewer) packets(kind webrtc.RTPCodecType) []rtp.Packet {
	tv.mu.Lock()
	defer tv.mu.Unlock()
	return append([]rtp.Packet(nil), tv.pkts[kind]...)
}

// TestViewerSwitchesSources: one viewer follows publisher A, then B, then
// nothing, then A's replacement. Across each switch the SSRC stays, the
// sequence numbers continue without a gap, the timestamps keep
// increasing, and video resumes on a keyframe.
func TestViewerSwitchesSources(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	a := startPublisher(t, e, 30, true)
	av, aa := a.waitTracks()
	b := startPublisher(t, e, 30, true)
	bv, ba := b.waitTracks()
	tv := startViewer(t, e)
	require.ElementsMatch(t, []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo}, tv.v.Kinds())

	require.NoError(t, tv.v.SetSource(webrtc.RTPCodecTypeVideo, av))
	require.NoError(t, tv.v.SetSource(webrtc.RTPCodecTypeAudio, aa))
	stopA := a.stream(10 * time.Millisecond)
	waitPackets(t, tv, 40)
	stopA()
	time.Sleep(100 * time.Millisecond) // a pause between sources, as when a teacher reconnects
	before := len(tv.packets(webrtc.RTPCodecTypeVideo))

	require.NoError(t, tv.v.SetSource(webrtc.RTPCodecTypeVideo, bv))
	require.NoError(t, tv.v.SetSource(webrtc.RTPCodecTypeAudio, ba))
	stopB := b.stream(10 * time.Millisecond)
	waitPackets(t, tv, before+40)
	stopB()

	video := tv.packets(webrtc.RTPCodecTypeVideo)
	checkContinuous(t, video, 90000)
	checkContinuous(t, tv.packets(webrtc.RTPCodecTypeAudio), 48000)
	require.True(t, IsKeyframe(webrtc.MimeTypeVP8, video[0].Payload), "first packet is a keyframe")
	sw := switchPoint(t, video)
	require.True(t, IsKeyframe(webrtc.MimeTypeVP8, video[sw].Payload), "first packet after the switch is a keyframe")
	tv.v.mu.Lock()
	reading := tv.v.reading
	tv.v.mu.Unlock()
	requireDirect(t, tv.v.out, reading, true)

	// Detached: nothing more arrives while B keeps sending.
	require.NoError(t, tv.v.SetSource(webrtc.RTPCodecTypeVideo, nil))
	// Packets written before the detach may still be queued for the
	// socket or on their way: count once nothing more arrives (B is
	// stopped, so only those can).
	n := -1
	require.Eventually(t, func() bool {
		prev := n
		n = len(tv.packets(webrtc.RTPCodecTypeVideo))
		return n == prev
	}, waitFor, 50*time.Millisecond)
	stopB = b.stream(10 * time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	stopB()
	require.Equal(t, n, len(tv.packets(webrtc.RTPCodecTypeVideo)))
}

func waitPackets(t *testing.T, tv *testViewer, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return len(tv.packets(webrtc.RTPCodecTypeVideo)) >= n && len(tv.packets(webrtc.RTPCodecTypeAudio)) >= 10
	}, waitFor, tick)
}

// checkContinuous: one SSRC, consecutive sequence numbers, and
// timestamps that never go back.
func checkContinuous(t *testing.T, pkts []rtp.Packet, clock uint32) {
	t.Helper()
	require.NotEmpty(t, pkts)
	for i := 1; i < len(pkts); i++ {
		p, q := pkts[i-1], pkts[i]
		require.Equal(t, p.SSRC, q.SSRC, "SSRC changed at packet %d", i)
		require.Equal(t, p.SequenceNumber+1, q.SequenceNumber, "sequence gap at packet %d", i)
		require.GreaterOrEqual(t, int32(q.Timestamp-p.Timestamp), int32(0), "timestamp went back at packet %d", i)
		require.Less(t, int64(int32(q.Timestamp-p.Timestamp)), int64(clock)*5, "timestamp jumped at packet %d", i)
	}
}

// switchPoint finds the first packet of the second source: the payload
// index (the publisher's frame counter) starts over.
func switchPoint(t *testing.T, pkts []rtp.Packet) int {
	t.Helper()
	prev, _ := payloadIndex(webrtc.RTPCodecTypeVideo, pkts[0].Payload)
	for i := 1; i < len(pkts); i++ {
		idx, _ := payloadIndex(webrtc.RTPCodecTypeVideo, pkts[i].Payload)
		if idx < prev {
			// The timestamp advanced by about the pause, not by the
			// sources' own clocks.
			gap := pkts[i].Timestamp - pkts[i-1].Timestamp
			require.Greater(t, gap, uint32(90000/20), "timestamp gap follows the wall clock")
			return i
		}
		prev = idx
	}
	t.Fatal("no switch between sources found")
	return 0
}

// TestViewerCodecNegotiation: the answer holds every codec both sides
// support; a source whose codec the viewer lacks is refused; an offer with
// no codec the engine forwards, or no media, is an error of its own.
func TestViewerCodecNegotiation(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	pub := startPublisher(t, e, 30, false)
	vp8, _ := pub.waitTracks()

	h264 := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}, PayloadType: 100}
	av1 := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, PayloadType: 41}
	_, offer := recvOffer(t, viewerAPI(t, h264, av1), webrtc.RTPCodecTypeVideo)
	v, answer, err := e.NewViewer(offer, ViewerConfig{})
	require.NoError(t, err)
	require.Contains(t, answer.SDP, "H264/90000")
	require.Contains(t, answer.SDP, "AV1/90000")
	require.Equal(t, []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo}, v.Kinds())
	require.False(t, v.Accepts(vp8))
	err = v.SetSource(webrtc.RTPCodecTypeVideo, vp8)
	require.ErrorIs(t, err, ErrUnsupportedCodec)
	require.Contains(t, err.Error(), "video/VP8")
	require.NoError(t, v.Close())

	pcmu := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0}
	_, offer = recvOffer(t, viewerAPI(t, pcmu), webrtc.RTPCodecTypeAudio)
	_, _, err = e.NewViewer(offer, ViewerConfig{})
	require.ErrorIs(t, err, ErrUnsupportedCodec)

	for _, bad := range []webrtc.SessionDescription{
		{Type: webrtc.SDPTypeOffer, SDP: "not sdp"},
		{Type: webrtc.SDPTypeAnswer, SDP: offer.SDP},
		{Type: webrtc.SDPTypeOffer, SDP: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"},
	} {
		_, _, err = e.NewViewer(bad, ViewerConfig{})
		require.True(t, errors.Is(err, ErrBadSDP), "%q: %v", bad.SDP, err)
	}
	require.Eventually(t, func() bool { return e.Stats().Subscribers == 0 }, waitFor, tick)
}

// TestOfferKindsBundleOnly: a bundle-only section (port 0, RFC 8843
// section 6), as GStreamer's webrtcbin offers with max-bundle, carries
// media; a port-0 section without bundle-only is rejected.
func TestOfferKindsBundleOnly(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	const head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
	video := "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n"
	audio := "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=rtpmap:111 OPUS/48000/2\r\n"
	offer := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: head + video + audio + "a=bundle-only\r\n"}
	kinds, _, err := e.offerKinds(offer, true)
	require.NoError(t, err)
	require.Len(t, kinds, 2)
	offer.SDP = head + video + audio
	kinds, _, err = e.offerKinds(offer, true)
	require.NoError(t, err)
	require.Equal(t, []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo}, kinds)
	require.NoError(t, e.CheckPublishOffer(offer))
}
