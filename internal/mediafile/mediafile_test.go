package mediafile

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestOpusDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prev, cur uint64
		want      time.Duration
	}{
		{0, 960, opusFrame},
		{960, 1920, 20 * time.Millisecond},
		{960, 1440, 10 * time.Millisecond},
		{1920, 1920, opusFrame},
		{960, 960 + 48000, opusFrame},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, opusDuration(tc.prev, tc.cur), "%d->%d", tc.prev, tc.cur)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	_, err := LoadIVF("../../testdata/missing.ivf")
	require.ErrorIs(t, err, ErrMedia)
	_, err = LoadIVF("../../testdata/clip.ogg")
	require.ErrorIs(t, err, ErrMedia, "an Ogg file is not IVF")
	_, err = LoadOgg("../../testdata/clip.ivf")
	require.ErrorIs(t, err, ErrMedia, "an IVF file is not Ogg")
	v, err := LoadIVF("../../testdata/bench/clip-720p.ivf")
	require.NoError(t, err)
	require.Equal(t, 1280, v.Width)
	require.Equal(t, 720, v.Height)
	require.InDelta(t, float64(time.Second/30), float64(v.FrameDur), float64(time.Millisecond))
}
