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
	pk := rtp.NewPacketizer(1200, 102, 1, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
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
