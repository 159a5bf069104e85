package recording

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/stretchr/testify/require"
)

// x264SPS encodes one frame with ffmpeg's x264 and returns its SPS NAL
// unit. A machine without ffmpeg fails the test: it is a broken setup.
func x264SPS(t *testing.T, size, profile string) []byte {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	require.NoError(t, err, "ffmpeg is needed (Debian package ffmpeg)")
	out := filepath.Join(t.TempDir(), "one.h264")
	b, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size="+size,
		"-frames:v", "1", "-c:v", "libx264", "-profile:v", profile, "-pix_fmt", "yuv420p", out).CombinedOutput()
	require.NoError(t, err, "ffmpeg: %s", b)
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	r, err := h264reader.NewReader(f)
	require.NoError(t, err)
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			t.Fatal("no SPS in the encoder's output")
		}
		require.NoError(t, err)
		if nal.UnitType == h264reader.NalUnitTypeSPS {
			return append([]byte(nil), nal.Data...)
		}
	}
}

// TestAVCSize: the picture size comes from the SPS, cropping included
// (1080 lines are coded as 1088), for baseline and high profile SPSs.
func TestAVCSize(t *testing.T) {
	for _, tc := range []struct {
		size, profile string
		w, h          uint64
	}{
		{"320x240", "baseline", 320, 240},
		{"320x240", "high", 320, 240},
		{"1920x1080", "high", 1920, 1080},
		{"1280x720", "main", 1280, 720},
		{"426x240", "high", 426, 240},
		{"642x362", "baseline", 642, 362},
	} {
		sps := x264SPS(t, tc.size, tc.profile)
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(sps)))
		frame = append(frame, sps...)
		w, h := avcSize(frame)
		require.Equal(t, [2]uint64{tc.w, tc.h}, [2]uint64{w, h}, "%s %s", tc.size, tc.profile)
	}
	w, h := avcSize([]byte{0, 0, 0, 2, 0x67, 0x64})
	require.Zero(t, w+h, "a truncated SPS has no size")
}

// FuzzAVCSize: no SPS, however malformed, panics or gives an absurd size.
func FuzzAVCSize(f *testing.F) {
	f.Add([]byte{0x67, 0x42, 0xc0, 0x15, 0xda, 0x05, 0x07, 0xec, 0x05, 0xa8, 0x30, 0x30, 0x35, 0x28})
	f.Add([]byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x6a, 0x02, 0x02, 0x02, 0x80})
	f.Add([]byte{0x67})
	f.Fuzz(func(t *testing.T, sps []byte) {
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(sps)))
		w, h := avcSize(append(frame, sps...))
		if w > 16384 || h > 16384 || (w == 0) != (h == 0) {
			t.Fatalf("size %dx%d", w, h)
		}
	})
}

// TestH264Valid: a frame without a coded slice, what is left of one whose
// slices were lost, is not written as a picture.
func TestH264Valid(t *testing.T) {
	nal := func(b ...byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) }
	require.True(t, h264Valid(append(nal(0x09, 0xf0), nal(0x65, 0x88, 0x84)...)), "AUD then IDR slice")
	require.True(t, h264Valid(nal(0x41, 0x9a, 0x02)), "non-IDR slice")
	require.False(t, h264Valid(nal(0x09, 0xf0)), "a lone access unit delimiter")
	require.False(t, h264Valid(append(nal(0x67, 0x42, 0xc0, 0x15), nal(0x68, 0xce)...)), "parameter sets alone")
	require.False(t, h264Valid(nil))
}
