package client

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

// connect offers from a to b over loopback, exchanging complete
// descriptions (no trickle), and waits until both are connected.
func connect(t *testing.T, a, b *webrtc.PeerConnection) {
	t.Helper()
	offer, err := a.CreateOffer(nil)
	require.NoError(t, err)
	gather := webrtc.GatheringCompletePromise(a)
	require.NoError(t, a.SetLocalDescription(offer))
	<-gather
	require.NoError(t, b.SetRemoteDescription(*a.LocalDescription()))
	answer, err := b.CreateAnswer(nil)
	require.NoError(t, err)
	gather = webrtc.GatheringCompletePromise(b)
	require.NoError(t, b.SetLocalDescription(answer))
	<-gather
	require.NoError(t, a.SetRemoteDescription(*b.LocalDescription()))
	for _, sdp := range []string{a.LocalDescription().SDP, b.LocalDescription().SDP} {
		require.Contains(t, sdp, "127.0.0.1", "loopback candidate")
		require.NotContains(t, sdp, ".local", "no mDNS candidate")
	}
	require.Eventually(t, func() bool {
		return a.ConnectionState() == webrtc.PeerConnectionStateConnected &&
			b.ConnectionState() == webrtc.PeerConnectionStateConnected
	}, 10*time.Second, 10*time.Millisecond)
}

// TestPublisherOverLoopback sends the clip from a Publisher through a real
// pion pair and checks that the receiving side (the Subscription reader)
// counts what the Publisher counted as sent, and finds the keyframes.
func TestPublisherOverLoopback(t *testing.T) {
	t.Parallel()
	api, err := NewAPI(APIOptions{})
	require.NoError(t, err)
	send, err := api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	recv, err := api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)

	pub, err := NewPublisher(PublisherOptions{IVF: "../testdata/clip.ivf", Ogg: "../testdata/clip.ogg"})
	require.NoError(t, err)
	require.Len(t, pub.Tracks(), 2)
	for _, tr := range pub.Tracks() {
		_, err := send.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		require.NoError(t, err)
	}
	var audioSeen atomic.Uint64
	c := &Client{opts: Options{OnPacket: func(_ *Subscription, kind webrtc.RTPCodecType, p *rtp.Packet) {
		if kind == webrtc.RTPCodecTypeAudio && len(p.Payload) > 0 {
			audioSeen.Add(1)
		}
	}}}
	sub := &Subscription{c: c, done: make(chan struct{})}
	sub.pc = recv
	recv.OnTrack(sub.onTrack)
	connect(t, send, recv)
	pub.Start()

	// 1.5 s of media: at least one keyframe (the clip starts with one).
	require.Eventually(t, func() bool {
		return sub.Video().Keyframes >= 1 && sub.Audio().Packets >= 50
	}, 10*time.Second, 20*time.Millisecond)
	pub.Stop()
	sentV, sentA := pub.Sent(webrtc.RTPCodecTypeVideo), pub.Sent(webrtc.RTPCodecTypeAudio)
	require.Positive(t, sentV.Packets)
	require.Greater(t, sentV.Packets, sentV.Samples, "a 640x360 keyframe needs several packets")
	require.Equal(t, sentA.Samples, sentA.Packets, "one Opus packet per RTP packet")
	require.Eventually(t, func() bool {
		return sub.Video().Packets == sentV.Packets && sub.Audio().Packets == sentA.Packets
	}, 5*time.Second, 20*time.Millisecond, "received %+v %+v, sent %+v %+v", sub.Video(), sub.Audio(), sentV, sentA)
	require.Equal(t, sentV.Bytes, sub.Video().Bytes)
	require.Equal(t, sentA.Packets, audioSeen.Load(), "OnPacket saw every audio packet")
	require.False(t, sub.Video().FirstKeyframe.Before(sub.Video().FirstPacket))

	require.NoError(t, send.GracefulClose())
	sub.close()
}
