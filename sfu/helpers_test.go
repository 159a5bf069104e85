package sfu

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

const (
	waitFor = 10 * time.Second
	tick    = 5 * time.Millisecond
)

// newTestEngine starts an engine the way the tests of the guide require:
// public IP 127.0.0.1, ports chosen by the system.
func newTestEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := NewEngine(Config{PublicIP: "127.0.0.1", Logger: zerolog.Nop()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// clientAPI is a plain pion client confined to loopback. Replay protection
// is off for subscribers that must see a retransmitted duplicate.
func clientAPI(t *testing.T, replayProtection bool) *webrtc.API {
	t.Helper()
	me, se := clientParts(t)
	if !replayProtection {
		se.DisableSRTPReplayProtection(true)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
}

// clientParts are the media and setting engines of a test client.
func clientParts(t *testing.T) (*webrtc.MediaEngine, webrtc.SettingEngine) {
	t.Helper()
	me := &webrtc.MediaEngine{}
	require.NoError(t, me.RegisterDefaultCodecs())
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return me, se
}

func gatheredDescription(t *testing.T, pc *webrtc.PeerConnection, d webrtc.SessionDescription) webrtc.SessionDescription {
	t.Helper()
	done := webrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(d))
	<-done
	return *pc.LocalDescription()
}

func waitConnected(t *testing.T, pc *webrtc.PeerConnection) {
	t.Helper()
	require.Eventually(t, func() bool {
		return pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	}, waitFor, tick, "peer connection did not connect")
}

// vp8Payload builds a valid VP8 RTP payload (RFC 7741) carrying frame idx.
// A keyframe has P=0 in the frame tag, the start code 9d 01 2a and a
// 320x240 size; a delta frame has P=1. The rest is derived from idx so a
// receiver can check every byte.
func vp8Payload(idx uint32, key bool) []byte {
	p := []byte{0x10} // S=1, PID=0
	if key {
		p = append(p, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00)
	} else {
		p = append(p, 0x11, 0x02, 0x00)
	}
	return appendBody(p, idx, 600)
}

func opusPayload(idx uint32) []byte { return appendBody([]byte{0xfc}, idx, 80) }

func appendBody(p []byte, idx uint32, n int) []byte {
	p = binary.BigEndian.AppendUint32(p, idx)
	for i := 0; i < n; i++ {
		p = append(p, byte(int(idx)*7+i))
	}
	return p
}

// payloadIndex recovers idx from a payload built above.
func payloadIndex(kind webrtc.RTPCodecType, p []byte) (uint32, bool) {
	off := 1
	if kind == webrtc.RTPCodecTypeVideo {
		if len(p) < 2 {
			return 0, false
		}
		off = 4
		if p[1]&0x01 == 0 {
			off = 11
		}
	}
	if len(p) < off+4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(p[off:]), true
}

// testPublisher is a pion client publishing VP8 and Opus to the engine.
type testPublisher struct {
	t          *testing.T
	pc         *webrtc.PeerConnection
	video      *webrtc.TrackLocalStaticRTP
	audio      *webrtc.TrackLocalStaticRTP
	pub        *Publisher
	tracks     chan *Track
	plis       atomic.Int32
	keyOnPLI   bool
	keyEvery   uint32
	mu         sync.Mutex
	vIdx, aIdx uint32
	vSeq, aSeq uint16
	forceKey   atomic.Bool
}

func startPublisher(t *testing.T, e *Engine, keyEvery uint32, keyOnPLI bool) *testPublisher {
	t.Helper()
	return startPublisherWith(t, e, clientAPI(t, true), keyEvery, keyOnPLI)
}

// quietClientAPI is clientAPI without pion's default interceptors: it
// sends no RTCP of its own (no sender reports), so a test can be the only
// source of the publisher's reports.
func quietClientAPI(t *testing.T) *webrtc.API {
	t.Helper()
	me, se := clientParts(t)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
}

func startPublisherWith(t *testing.T, e *Engine, api *webrtc.API, keyEvery uint32, keyOnPLI bool) *testPublisher {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	tp := &testPublisher{t: t, pc: pc, tracks: make(chan *Track, 4), keyEvery: keyEvery, keyOnPLI: keyOnPLI}
	tp.video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "cam")
	require.NoError(t, err)
	tp.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "cam")
	require.NoError(t, err)
	for _, tr := range []webrtc.TrackLocal{tp.video, tp.audio} {
		x, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		require.NoError(t, err)
		go tp.readRTCP(x.Sender())
	}
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	offer = gatheredDescription(t, pc, offer)
	pub, answer, err := e.NewPublisher(offer, PublisherConfig{
		StreamID: "cam",
		OnTrack:  func(tr *Track) { tp.tracks <- tr },
	})
	require.NoError(t, err)
	require.Equal(t, 2, pub.ExpectedTracks())
	tp.pub = pub
	require.NoError(t, pc.SetRemoteDescription(answer))
	waitConnected(t, pc)
	return tp
}

func (tp *testPublisher) readRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		n, _, err := s.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			if _, ok := p.(*rtcp.PictureLossIndication); ok {
				tp.plis.Add(1)
				if tp.keyOnPLI {
					tp.forceKey.Store(true)
				}
			}
		}
	}
}

// sendVideo sends the next video frame (one packet) and returns its index.
func (tp *testPublisher) sendVideo() uint32 {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	idx := tp.vIdx
	key := idx == 0 || (tp.keyEvery > 0 && idx%tp.keyEvery == 0) || tp.forceKey.Swap(false)
	tp.vIdx++
	tp.vSeq++
	require.NoError(tp.t, tp.video.WriteRTP(&rtp.Packet{
		Header:  rtp.Header{Version: 2, Marker: true, SequenceNumber: tp.vSeq, Timestamp: idx * 3000},
		Payload: vp8Payload(idx, key),
	}))
	return idx
}

func (tp *testPublisher) sendAudio() uint32 {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	idx := tp.aIdx
	tp.aIdx++
	tp.aSeq++
	require.NoError(tp.t, tp.audio.WriteRTP(&rtp.Packet{
		Header:  rtp.Header{Version: 2, SequenceNumber: tp.aSeq, Timestamp: idx * 960},
		Payload: opusPayload(idx),
	}))
	return idx
}

// waitTracks sends media until the engine has published both tracks.
func (tp *testPublisher) waitTracks() (video, audio *Track) {
	tp.t.Helper()
	require.Eventually(tp.t, func() bool {
		tp.sendVideo()
		tp.sendAudio()
		for len(tp.tracks) > 0 {
			tr := <-tp.tracks
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				video = tr
			} else {
				audio = tr
			}
		}
		return video != nil && audio != nil
	}, waitFor, tick)
	return video, audio
}

// stream sends a frame of each kind every interval until stop is closed.
func (tp *testPublisher) stream(interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				tp.sendVideo()
				tp.sendAudio()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// received is one packet as a test subscriber got it.
type received struct {
	seq     uint16
	payload []byte
}

// testSubscriber is a pion client receiving a Subscriber's offer.
type testSubscriber struct {
	t      *testing.T
	pc     *webrtc.PeerConnection
	sub    *Subscriber
	mu     sync.Mutex
	got    map[webrtc.RTPCodecType][]received
	ssrc   map[webrtc.RTPCodecType]webrtc.SSRC
	srs    map[uint32][]rtcp.SenderReport // sender reports by SSRC
	wg     sync.WaitGroup
	closed bool
}

func startSubscriber(t *testing.T, e *Engine, tracks []*Track, replayProtection bool) *testSubscriber {
	t.Helper()
	return startSubscriberWith(t, e, tracks, replayProtection, SubscriberConfig{})
}

func startSubscriberWith(t *testing.T, e *Engine, tracks []*Track, replayProtection bool, cfg SubscriberConfig) *testSubscriber {
	t.Helper()
	pc, err := clientAPI(t, replayProtection).NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	ts := &testSubscriber{
		t: t, pc: pc,
		got:  map[webrtc.RTPCodecType][]received{},
		ssrc: map[webrtc.RTPCodecType]webrtc.SSRC{},
		srs:  map[uint32][]rtcp.SenderReport{},
	}
	t.Cleanup(func() {
		_ = pc.Close()
		ts.mu.Lock()
		ts.closed = true
		ts.mu.Unlock()
		ts.wg.Wait()
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		ts.mu.Lock()
		if ts.closed {
			ts.mu.Unlock()
			return
		}
		ts.wg.Add(2)
		go ts.readReports(r)
		ts.ssrc[tr.Kind()] = tr.SSRC()
		ts.mu.Unlock()
		defer ts.wg.Done()
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			ts.mu.Lock()
			ts.got[tr.Kind()] = append(ts.got[tr.Kind()], received{pkt.SequenceNumber, append([]byte(nil), pkt.Payload...)})
			ts.mu.Unlock()
		}
	})
	sub, offer, err := e.NewSubscriber(tracks, cfg)
	require.NoError(t, err)
	ts.sub = sub
	t.Cleanup(func() { _ = sub.Close() })
	require.NoError(t, pc.SetRemoteDescription(offer))
	answer, err := pc.CreateAnswer(nil)
	require.NoError(t, err)
	require.NoError(t, sub.SetAnswer(gatheredDescription(t, pc, answer)))
	waitConnected(t, pc)
	return ts
}

// readReports keeps the sender reports a receiver gets.
func (ts *testSubscriber) readReports(r *webrtc.RTPReceiver) {
	defer ts.wg.Done()
	for {
		pkts, _, err := r.ReadRTCP()
		if err != nil {
			return
		}
		ts.mu.Lock()
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				ts.srs[sr.SSRC] = append(ts.srs[sr.SSRC], *sr)
			}
		}
		ts.mu.Unlock()
	}
}

// reports returns the sender reports received for kind's SSRC.
func (ts *testSubscriber) reports(kind webrtc.RTPCodecType) []rtcp.SenderReport {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]rtcp.SenderReport(nil), ts.srs[uint32(ts.ssrc[kind])]...)
}

func (ts *testSubscriber) packets(kind webrtc.RTPCodecType) []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.got[kind]...)
}

func (ts *testSubscriber) ssrcOf(kind webrtc.RTPCodecType) webrtc.SSRC {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.ssrc[kind]
}
