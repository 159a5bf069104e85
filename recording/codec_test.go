package recording

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// vp8Frame builds a VP8 frame whose tag declares a first partition of
// part bytes, with n bytes in all.
func vp8Frame(key bool, part, n int) []byte {
	tag := uint32(part) << 5
	if !key {
		tag |= 0x01
	}
	f := make([]byte, n)
	f[0], f[1], f[2] = byte(tag), byte(tag>>8), byte(tag>>16)
	if key && n >= 10 {
		copy(f[3:], []byte{0x9d, 0x01, 0x2a})
	}
	return f
}

// TestVP8Valid: a frame is whole when it holds at least its header and
// the first partition its tag declares (RFC 6386 9.1).
func TestVP8Valid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		f    []byte
		want bool
	}{
		{"key frame, exact", vp8Frame(true, 100, 110), true},
		{"key frame, with a second partition", vp8Frame(true, 100, 900), true},
		{"key frame, truncated", vp8Frame(true, 100, 109), false},
		{"delta frame, exact", vp8Frame(false, 100, 103), true},
		{"delta frame, truncated", vp8Frame(false, 1000, 600), false},
		{"large first partition", vp8Frame(false, 300000, 300003), true},
		{"shorter than a tag", []byte{0x01, 0x00}, false},
		{"empty", nil, false},
	} {
		require.Equal(t, tc.want, vp8Valid(tc.f), tc.name)
	}
}
