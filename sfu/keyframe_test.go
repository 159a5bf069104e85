package sfu

import (
	"testing"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

func TestKeyframeDetection(t *testing.T) {
	t.Parallel()
	vp8Key := []byte{0x10, 0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}
	tests := []struct {
		name    string
		mime    string
		payload []byte
		want    bool
	}{
		{"vp8 keyframe", webrtc.MimeTypeVP8, vp8Key, true},
		{"vp8 delta (P=1)", webrtc.MimeTypeVP8, []byte{0x10, 0x11, 0x00, 0x00}, false},
		{"vp8 not start of partition (S=0)", webrtc.MimeTypeVP8, []byte{0x00, 0x10, 0x00, 0x00}, false},
		{"vp8 partition 1 (PID=1)", webrtc.MimeTypeVP8, []byte{0x11, 0x10, 0x00, 0x00}, false},
		{"vp8 keyframe with 15-bit picture id", webrtc.MimeTypeVP8, []byte{0x90, 0x80, 0x81, 0x23, 0x10, 0x00}, true},
		{"vp8 delta with 7-bit picture id", webrtc.MimeTypeVP8, []byte{0x90, 0x80, 0x05, 0x11}, false},
		{"vp8 keyframe with I, L, T", webrtc.MimeTypeVP8, []byte{0x90, 0xe0, 0x05, 0x07, 0x20, 0x10}, true},
		{"vp8 truncated after descriptor", webrtc.MimeTypeVP8, []byte{0x90, 0x80}, false},
		{"vp8 empty", webrtc.MimeTypeVP8, nil, false},
		{"vp9 keyframe start", webrtc.MimeTypeVP9, []byte{0x08, 0x00}, true},
		{"vp9 inter picture (P=1)", webrtc.MimeTypeVP9, []byte{0x48, 0x00}, false},
		{"vp9 not start of frame (B=0)", webrtc.MimeTypeVP9, []byte{0x00, 0x00}, false},
		{"vp9 keyframe spatial layer 0", webrtc.MimeTypeVP9, []byte{0xa8, 0x05, 0x00}, true},
		{"vp9 spatial layer 1", webrtc.MimeTypeVP9, []byte{0xa8, 0x05, 0x02}, false},
		{"vp9 truncated layer byte", webrtc.MimeTypeVP9, []byte{0xa8, 0x80}, false},
		{"h264 IDR single NAL", webrtc.MimeTypeH264, []byte{0x65, 0x88}, true},
		{"h264 SPS single NAL", webrtc.MimeTypeH264, []byte{0x67, 0x42}, true},
		{"h264 non-IDR slice", webrtc.MimeTypeH264, []byte{0x41, 0x9a}, false},
		{"h264 STAP-A with SPS", webrtc.MimeTypeH264, []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, true},
		{"h264 STAP-A without keyframe", webrtc.MimeTypeH264, []byte{0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x41, 0x9a}, false},
		{"h264 STAP-A truncated", webrtc.MimeTypeH264, []byte{0x78, 0x00, 0x09}, false},
		{"h264 FU-A IDR start", webrtc.MimeTypeH264, []byte{0x7c, 0x85, 0x88}, true},
		{"h264 FU-A IDR middle", webrtc.MimeTypeH264, []byte{0x7c, 0x05, 0x88}, false},
		{"h264 FU-A non-IDR start", webrtc.MimeTypeH264, []byte{0x7c, 0x81, 0x9a}, false},
		{"h264 FU-A truncated", webrtc.MimeTypeH264, []byte{0x7c}, false},
		{"av1 new coded video sequence (N=1)", webrtc.MimeTypeAV1, []byte{0x18, 0x00}, true},
		{"av1 continuation", webrtc.MimeTypeAV1, []byte{0x10, 0x00}, false},
		{"opus never", webrtc.MimeTypeOpus, vp8Key, false},
		{"mime is case-insensitive", "VIDEO/vp8", vp8Key, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, IsKeyframe(tc.mime, tc.payload))
		})
	}
}
