package sfu

import (
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

func TestClassifyH264(t *testing.T) {
	for _, tc := range []struct {
		plid string
		want h264Profile
	}{
		{"42e01f", h264ConstrainedBaseline}, // browsers
		{"42c015", h264ConstrainedBaseline}, // x264 constrained-baseline
		{"4d801f", h264ConstrainedBaseline},
		{"58c01f", h264ConstrainedBaseline},
		{"42001f", h264Baseline},
		{"42a01f", h264Baseline}, // constraint_set0 and 2, not 1
		{"58801f", h264Baseline},
		{"4d001f", h264Main},
		{"4d401f", h264Main}, // x264 main sets constraint_set1
		{"64001f", h264High},
		{"640c1f", h264ConstrainedHigh},
		{"f4001f", h264PredictiveHigh444},
		{"64101f", h264Unknown}, // reserved bits
		{"42e", h264Unknown},
		{"zzzzzz", h264Unknown},
		{"6e001f", h264Unknown}, // High 10 is not a WebRTC profile
		{"", h264Unknown},
	} {
		require.Equal(t, tc.want, parseProfileLevelID(tc.plid), tc.plid)
	}
}

// TestMatchH264: a stream goes as the receiver's own profile when it has
// it, then as a profile whose decoders take it, then as any profile the
// receiver lists; never in a packetization mode the receiver lacks.
func TestMatchH264(t *testing.T) {
	h264 := func(pt uint8, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{PayloadType: webrtc.PayloadType(pt),
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: fmtp}}
	}
	chromium := []webrtc.RTPCodecParameters{
		h264(102, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"),
		h264(127, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f"),
		h264(125, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
		h264(108, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f"),
		h264(123, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"),
		h264(112, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"),
	}
	firefox := []webrtc.RTPCodecParameters{
		h264(126, "profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1"),
		h264(97, "profile-level-id=42e01f;level-asymmetry-allowed=1"),
	}
	onlyMode0 := []webrtc.RTPCodecParameters{h264(97, "profile-level-id=42e01f")}
	for _, tc := range []struct {
		name   string
		stream string
		list   []webrtc.RTPCodecParameters
		want   uint8 // 0: no match
	}{
		{"x264 constrained baseline as the browser's", "packetization-mode=1;profile-level-id=42c015", chromium, 125},
		{"high as high", "packetization-mode=1;profile-level-id=640028", chromium, 112},
		{"main as main", "packetization-mode=1;profile-level-id=4d401f", chromium, 123},
		{"constrained high by a high decoder", "packetization-mode=1;profile-level-id=640c1f", chromium, 112},
		{"mode 0 stays mode 0", "packetization-mode=0;profile-level-id=42e01f", chromium, 108},
		{"high to a receiver listing only baseline", "packetization-mode=1;profile-level-id=64001f", firefox, 126},
		{"mode 1 needs mode 1", "packetization-mode=1;profile-level-id=42e01f", onlyMode0, 0},
		{"mode 0 to mode 0", "profile-level-id=42e01f", onlyMode0, 97},
	} {
		c := h264(96, tc.stream)
		got, ok := matchCodec(c, tc.list)
		if tc.want == 0 {
			require.False(t, ok, tc.name)
			continue
		}
		require.True(t, ok, tc.name)
		require.Equal(t, tc.want, uint8(got.PayloadType), tc.name)
	}
}

func TestSPSProfile(t *testing.T) {
	sps := []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9}
	pps := []byte{0x68, 0xeb, 0xe3, 0xcb}
	stap := append([]byte{0x18, 0x00, byte(len(sps))}, sps...)
	stap = append(stap, 0x00, byte(len(pps)))
	stap = append(stap, pps...)
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"single NAL unit", sps, "64001f"},
		{"STAP-A", stap, "64001f"},
		{"FU-A start", []byte{0x7c, 0x87, 0x42, 0xc0, 0x15, 0x00}, "42c015"},
		{"FU-A middle", []byte{0x7c, 0x07, 0x42, 0xc0, 0x15}, ""},
		{"IDR", []byte{0x65, 0x88, 0x84}, ""},
		{"truncated SPS", []byte{0x67, 0x64}, ""},
		{"STAP-A overrun", []byte{0x18, 0x00, 0x40, 0x67, 0x64, 0x00, 0x1f}, ""},
		{"unknown profile", []byte{0x67, 0x6e, 0x00, 0x1f}, ""},
		{"empty", nil, ""},
	} {
		got, ok := spsProfile(tc.payload)
		require.Equal(t, tc.want != "", ok, tc.name)
		require.Equal(t, tc.want, got, tc.name)
	}
}

func TestWithProfile(t *testing.T) {
	require.Equal(t, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f",
		withProfile("", "64001f"))
	require.Equal(t, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42c015;sprop-parameter-sets=Z0LAFQ==,aM48gA==",
		withProfile("packetization-mode=0;sprop-parameter-sets=Z0LAFQ==,aM48gA==", "42c015"))
}

// TestTrackLearnsProfile: a track whose offer stated no H.264 profile is
// published once its SPS comes, with the SPS's profile; a stream without
// one is published after profileWait as constrained baseline.
func TestTrackLearnsProfile(t *testing.T) {
	newH264 := func() *Track {
		return newTrack(trackParams{id: "v", streamID: "s", kind: webrtc.RTPCodecTypeVideo, ssrc: 1,
			codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}},
			log:   zerolog.Nop(), stats: &counters{}, pool: newPacketPool()})
	}
	packet := func(payload ...byte) *Packet {
		raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102}, Payload: payload}).Marshal()
		require.NoError(t, err)
		p, err := NewPacket(raw, false)
		require.NoError(t, err)
		return p
	}
	profiled := func(tr *Track) bool {
		select {
		case <-tr.profiled:
			return true
		default:
			return false
		}
	}

	tr := newH264()
	tr.handle(packet(0x41, 0x9a), 1) // a slice: no SPS yet
	require.False(t, profiled(tr))
	tr.handle(packet(0x67, 0x64, 0x00, 0x28, 0xac), 2)
	require.True(t, profiled(tr))
	require.Equal(t, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640028", tr.Codec().SDPFmtpLine)
	tr.end()

	tr = newH264()
	tr.handle(packet(0x41, 0x9a), profileWait-1)
	require.False(t, profiled(tr))
	tr.handle(packet(0x41, 0x9b), profileWait)
	require.True(t, profiled(tr))
	require.Contains(t, tr.Codec().SDPFmtpLine, "profile-level-id=42e01f")
	tr.end()

	stated := newTrack(trackParams{id: "v", streamID: "s", kind: webrtc.RTPCodecTypeVideo, ssrc: 1,
		codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264,
			ClockRate: 90000, SDPFmtpLine: "packetization-mode=1;profile-level-id=4d001f"}},
		log: zerolog.Nop(), stats: &counters{}, pool: newPacketPool()})
	require.True(t, profiled(stated), "a stated profile is final at once")
	stated.end()
}
