package recording

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"lectern/sfu"
)

// publishClient is a plain pion client on loopback with pion's default
// interceptors, so it sends RTCP sender reports like a browser.
func publishClient(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	me := &webrtc.MediaEngine{}
	require.NoError(t, me.RegisterDefaultCodecs())
	ir := &interceptor.Registry{}
	require.NoError(t, webrtc.RegisterDefaultInterceptors(me, ir))
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	return pc
}

// TestRecordFromEngine: a pion publisher sends VP8 and Opus through a real
// sfu.Engine; the recorder is one more sink of its tracks. The tracks
// carry the publisher's sender reports and the file plays.
func TestRecordFromEngine(t *testing.T) {
	t.Parallel()
	e, err := sfu.NewEngine(sfu.Config{PublicIP: "127.0.0.1", Logger: zerolog.Nop()})
	require.NoError(t, err)
	defer func() { _ = e.Close() }()
	pc := publishClient(t)
	defer func() { _ = pc.Close() }()
	vt, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "cam")
	require.NoError(t, err)
	at, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "cam")
	require.NoError(t, err)
	for _, tr := range []webrtc.TrackLocal{vt, at} {
		_, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		require.NoError(t, err)
	}
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	gathered := webrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(offer))
	<-gathered
	tracks := make(chan *sfu.Track, 2)
	pub, answer, err := e.NewPublisher(*pc.LocalDescription(), sfu.PublisherConfig{
		Logger: zerolog.Nop(), OnTrack: func(tr *sfu.Track) { tracks <- tr }})
	require.NoError(t, err)
	defer func() { _ = pub.Close() }()
	require.NoError(t, pc.SetRemoteDescription(answer))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	send := func(tr *webrtc.TrackLocalStaticSample, frames [][]byte, d time.Duration) {
		defer wg.Done()
		tk := time.NewTicker(d)
		defer tk.Stop()
		for i := 0; ; i++ {
			if err := tr.WriteSample(media.Sample{Data: frames[i%len(frames)], Duration: d}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}
	wg.Add(2)
	go send(vt, vp8Frames(t, testMedia.vp8GOP30), frame30)
	go send(at, opusFrames(t, testMedia.opus), 20*time.Millisecond)
	defer func() { close(stop); wg.Wait() }()

	var video, audio *sfu.Track
	for video == nil || audio == nil {
		select {
		case tr := <-tracks:
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				video = tr
			} else {
				audio = tr
			}
		case <-time.After(waitFor):
			t.Fatal("tracks did not arrive")
		}
	}
	r, err := New(t.TempDir(), Options{Logger: zerolog.Nop()})
	require.NoError(t, err)
	require.NoError(t, r.Attach(video, audio))
	require.Eventually(t, func() bool {
		_, _, vok := video.SenderReport()
		_, _, aok := audio.SenderReport()
		return vok && aok
	}, waitFor, tick, "sender reports reach the tracks")
	time.Sleep(2 * time.Second) // record a little more than the reports took
	info, err := r.Stop()
	require.NoError(t, err)
	require.Zero(t, r.Drops())
	pr := checkPlayable(t, info.Path, []string{"video", "audio"}, info.Duration, 100*time.Millisecond)
	require.Greater(t, pr.duration(t), 1500*time.Millisecond)
	ntp, _, _ := video.SenderReport()
	require.WithinDuration(t, time.Now(), ntp, 10*time.Second, "SR time is the sender's wall clock")
	t.Logf("from the engine: %v recorded, %d bytes", pr.duration(t), info.Size)
}
