package signaling

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/sfu"
)

// TestWHIPH264PassThrough: H.264 from a WHIP publisher reaches a WHEP
// viewer byte for byte, for the constrained baseline profile and for the
// high profile OBS sends by default. The stream is real x264 output
// (ffmpeg, no B-frames, a keyframe every second), packetized per RFC
// 6184; the viewer gets every RTP payload from the first keyframe on, in
// order and unchanged, with the payload type it negotiated for that
// profile.
func TestWHIPH264PassThrough(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ profile, plid string }{
		{"baseline", "42e01f"},
		{"high", "64001f"},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			t.Parallel()
			nals := encodeH264(t, tc.profile)
			env := newEnv(t, envOpts{engine: true})
			view := env.startWHEP(t, "/whep/h264", env.token("h264", auth.RoleStudent, "v", "Vic"))
			pub := env.startWHIP(t, "h264", env.token("h264", auth.RoleTeacher, "t", "Tess"), whipOpts{
				noAudio: true,
				codec: webrtc.RTPCodecCapability{
					MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
					SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + tc.plid,
				},
			})
			sent := sendH264(t, pub.video, nals)
			var got []rtp.Packet
			require.Eventually(t, func() bool {
				got = view.packets(kindVideo)
				return len(got) > 0 && bytes.Equal(got[len(got)-1].Payload, sent[len(sent)-1])
			}, 10*time.Second, 20*time.Millisecond, "the viewer gets the last packet")
			start := indexOf(sent, got[0].Payload)
			require.GreaterOrEqual(t, start, 0, "the first packet received was sent")
			require.Len(t, got, len(sent)-start, "every packet from the first one received")
			for i, p := range got {
				require.Equal(t, sent[start+i], p.Payload, "payload %d", i)
			}
			require.Less(t, start, len(sent)/2, "the viewer started at the stream's beginning, not late")
			codec := viewerCodec(t, view, got[0].PayloadType)
			require.Contains(t, codec, "profile-level-id="+tc.plid[:4])
		})
	}
}

// encodeH264 makes three seconds of H.264 with ffmpeg and reads its NAL
// units. A machine without ffmpeg fails the test: it is a broken setup.
func encodeH264(t *testing.T, profile string) [][]byte {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	require.NoError(t, err, "ffmpeg is needed (Debian package ffmpeg)")
	out := filepath.Join(t.TempDir(), "out.h264")
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", "testsrc2=size=320x240:rate=30", "-t", "3", "-c:v", "libx264", "-profile:v", profile,
		"-bf", "0", "-g", "30", "-pix_fmt", "yuv420p", out)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "ffmpeg: %s", b)
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	r, err := h264reader.NewReader(f)
	require.NoError(t, err)
	var nals [][]byte
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		nals = append(nals, append([]byte(nil), nal.Data...))
	}
	require.Greater(t, len(nals), 90)
	return nals
}

// sendH264 packetizes the NAL units (RFC 6184: single NAL unit packets,
// STAP-A for parameter sets, FU-A for large slices), one frame every 10 ms,
// and returns every payload sent.
func sendH264(t *testing.T, track *webrtc.TrackLocalStaticRTP, nals [][]byte) [][]byte {
	t.Helper()
	return packetizeH264(t, track, newH264Packetizer(), nals)
}

func newH264Packetizer() rtp.Packetizer {
	return rtp.NewPacketizer(1200, 102, 1, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
}

// packetizeH264 is sendH264 with a packetizer of the caller's, so that a
// stream sent in several calls keeps one sequence of RTP numbers.
func packetizeH264(t *testing.T, track *webrtc.TrackLocalStaticRTP, pk rtp.Packetizer, nals [][]byte) [][]byte {
	t.Helper()
	var sent [][]byte
	for _, nal := range nals {
		samples := uint32(0)
		if typ := nal[0] & 0x1f; typ == 1 || typ == 5 { // a slice ends the frame
			samples = 3000
		}
		for _, p := range pk.Packetize(nal, samples) {
			require.NoError(t, track.WriteRTP(p))
			sent = append(sent, append([]byte(nil), p.Payload...))
		}
		if samples > 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return sent
}

func indexOf(list [][]byte, b []byte) int {
	for i, x := range list {
		if bytes.Equal(x, b) {
			return i
		}
	}
	return -1
}

// viewerCodec is the fmtp of the payload type pt in the viewer's answer.
func viewerCodec(t *testing.T, v *whepView, pt uint8) string {
	t.Helper()
	for _, tr := range v.pc.GetTransceivers() {
		if tr.Receiver() == nil {
			continue
		}
		for _, c := range tr.Receiver().GetParameters().Codecs {
			if uint8(c.PayloadType) == pt {
				require.Equal(t, webrtc.MimeTypeH264, c.MimeType)
				return c.SDPFmtpLine
			}
		}
	}
	t.Fatalf("payload type %d not negotiated", pt)
	return ""
}

// h264API is a client whose only video codec is H.264 with the given
// format parameters ("" offers a bare rtpmap with no a=fmtp line, as
// GStreamer's webrtcbin and some encoder boxes do), and Opus.
func h264API(t *testing.T, fmtps ...string) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	for i, f := range fmtps {
		require.NoError(t, me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: f},
			PayloadType:        webrtc.PayloadType(102 + i),
		}, webrtc.RTPCodecTypeVideo))
	}
	require.NoError(t, me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio))
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(*clientSettings()))
}

// TestWHIPH264WithoutProfile: a WHIP publisher offers H.264 with no
// format parameters at all and sends High profile. The class takes the
// profile from the stream's SPS: a viewer listing every browser profile
// receives it as High, a viewer whose offer came before the teacher went
// live too, and a viewer that lists only constrained baseline (as
// Firefox's offer does) still receives it rather than a 422.
func TestWHIPH264WithoutProfile(t *testing.T) {
	t.Parallel()
	nals := encodeH264(t, "high")
	env := newEnv(t, envOpts{engine: true})
	early := env.startWHEP(t, "/whep/bare", env.token("bare", auth.RoleStudent, "e", "Early"))
	pub := env.startWHIP(t, "bare", env.token("bare", auth.RoleTeacher, "t", "Tess"), whipOpts{
		noAudio: true, api: h264API(t, ""),
		codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000},
	})
	require.NotContains(t, pub.pc.LocalDescription().SDP, "a=fmtp:102", "the offer states no H.264 parameters")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		pk := newH264Packetizer()
		for {
			select {
			case <-stop:
				return
			default:
				packetizeH264(t, pub.video, pk, nals)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })

	late := env.startWHEP(t, "/whep/bare", env.token("bare", auth.RoleStudent, "l", "Late"))
	lateAPI := h264API(t, "profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1")
	baseline, res := env.newWHEP(t, "/whep/bare", env.token("bare", auth.RoleStudent, "b", "Basil"), lateAPI, false)
	require.Equal(t, 201, res.status, res.body)
	for name, v := range map[string]*whepView{"early": early, "late": late, "baseline-only": baseline} {
		v.waitMedia(100, kindVideo)
		got := v.packets(kindVideo)
		require.True(t, sfu.IsKeyframe(webrtc.MimeTypeH264, got[0].Payload), "%s starts on a keyframe", name)
		codec := viewerCodec(t, v, got[0].PayloadType)
		want := "profile-level-id=6400"
		if name == "baseline-only" {
			want = "profile-level-id=42e0"
		}
		require.Contains(t, codec, want, name)
	}
}
