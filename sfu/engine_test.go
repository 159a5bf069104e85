package sfu

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// clientOffer makes a sendonly offer from a loopback pion client with
// tracks of the given codecs. The client never connects.
func clientOffer(t *testing.T, mimes ...string) webrtc.SessionDescription {
	t.Helper()
	pc, err := clientAPI(t, true).NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	for i, m := range mimes {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: m}, "t"+string(rune('a'+i)), "s")
		require.NoError(t, err)
		x, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		require.NoError(t, err)
		// Offer only this codec, as a browser limited to it would.
		c := webrtc.RTPCodecCapability{MimeType: m, ClockRate: 90000}
		if m == webrtc.MimeTypeOpus {
			c = webrtc.RTPCodecCapability{MimeType: m, ClockRate: 48000, Channels: 2}
		}
		require.NoError(t, x.SetCodecPreferences([]webrtc.RTPCodecParameters{{RTPCodecCapability: c}}))
	}
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	return gatheredDescription(t, pc, offer)
}

// TestEngineWithoutPublicIP: without a public IP the engine offers its
// interface addresses on the shared ports, never an mDNS name.
func TestEngineWithoutPublicIP(t *testing.T) {
	t.Parallel()
	e, err := NewEngine(Config{})
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Close()) }()
	pub, answer, err := e.NewPublisher(clientOffer(t, webrtc.MimeTypeVP8), PublisherConfig{})
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	n := 0
	for _, line := range strings.Split(answer.SDP, "\n") {
		if !strings.HasPrefix(line, "a=candidate:") {
			continue
		}
		n++
		require.NotContains(t, line, ".local")
		f := strings.Fields(line)
		if f[2] == "udp" {
			require.Equal(t, e.UDPAddr().Port, atoi(t, f[5]))
		}
	}
	require.NotZero(t, n, "the answer carries candidates")
}

// TestExpectedTracksCountsAcceptedSections: a section whose codec the
// engine does not forward is not expected to bring a track.
func TestExpectedTracksCountsAcceptedSections(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	pub, answer, err := e.NewPublisher(clientOffer(t, webrtc.MimeTypeH265, webrtc.MimeTypeOpus, webrtc.MimeTypeVP8), PublisherConfig{})
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	require.Equal(t, 2, pub.ExpectedTracks(), answer.SDP)
	require.Equal(t, StreamID("stream-"), pub.StreamID()[:7])

	_, _, err = e.NewPublisher(clientOffer(t, webrtc.MimeTypeH265), PublisherConfig{})
	require.ErrorIs(t, err, ErrBadSDP, "nothing the engine could forward")
	require.Equal(t, int64(1), e.Stats().Publishers, "only the first publisher is live")
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLoggerFactoryBridge(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l := NewLoggerFactory(zerolog.New(&buf), zerolog.WarnLevel).NewLogger("ice")
	l.Debugf("hidden %d", 1)
	l.Trace("hidden")
	l.Info("hidden")
	l.Warnf("shown %d", 2)
	l.Error("failed")
	l.Warnf("Failed to accept RTP %v", "stream is already closed")
	l.Warn("UDPMuxDefault should not listening on unspecified address, use NewMultiUDPMuxFromPort instead")
	out := buf.String()
	require.NotContains(t, out, "hidden")
	require.NotContains(t, out, "Failed to accept", "teardown races are not warnings")
	require.NotContains(t, out, "UDPMuxDefault", "the unspecified bind is deliberate")
	require.Contains(t, out, `"level":"warn","pion":"ice","message":"shown 2"`)
	require.Contains(t, out, `"level":"error","pion":"ice","message":"failed"`)
}
