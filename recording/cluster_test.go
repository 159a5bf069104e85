package recording

import (
	"os"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

// TestClusterPolicy reads the written clusters back: every video key
// frame starts a cluster, and no cluster spans more than the interval
// (one frame of slack), whatever the key frame spacing.
func TestClusterPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ivf      func() string
		interval time.Duration
		audio    bool
	}{
		{"key frame every second", func() string { return testMedia.vp8GOP30 }, time.Second, true},
		{"one key frame, 1 s clusters", func() string { return testMedia.vp8GOP300 }, time.Second, true},
		{"one key frame, 2 s clusters", func() string { return testMedia.vp8GOP300 }, 2 * time.Second, true},
		{"key frame every second, 500 ms clusters", func() string { return testMedia.vp8GOP30 }, 500 * time.Millisecond, false},
		{"audio only", nil, time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, _ := newTestRecorder(t, Options{ClusterInterval: tc.interval})
			var streams [][]timed
			var srcs []Source
			if tc.ivf != nil {
				v := newVideoSource("v", webrtc.MimeTypeVP8)
				srcs = append(srcs, v)
				streams = append(streams, packetize(v, vp8Frames(t, tc.ivf()), &codecs.VP8Payloader{}, videoParams(1, 1, 1), t0))
			}
			if tc.audio {
				a := newAudioSource("a")
				srcs = append(srcs, a)
				streams = append(streams, packetize(a, opusFrames(t, testMedia.opus), &codecs.OpusPayloader{}, audioParams(2, 2, 2), t0))
			}
			require.NoError(t, r.Attach(srcs...))
			feed(t, merge(streams...))
			info, err := r.Stop()
			require.NoError(t, err)
			checkClusters(t, info.Path, tc.interval, tc.ivf != nil)
		})
	}
}

func checkClusters(t *testing.T, path string, interval time.Duration, video bool) {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	require.NoError(t, err)
	type block struct {
		cluster int
		tc      int64
	}
	var blocks []block
	first := map[int]int64{} // cluster -> time of its first block
	keys := 0
	sc := scanner{r: f, size: st.Size(), scale: 1_000_000}
	sc.onBlock = func(cluster int, track uint64, tc int64, key bool) {
		if _, ok := first[cluster]; !ok {
			first[cluster] = tc
		}
		if video && track == 1 && key {
			keys++
			require.Equal(t, first[cluster], tc, "key frame at %d ms does not start its cluster", tc)
		}
		blocks = append(blocks, block{cluster, tc})
	}
	require.NoError(t, sc.scan())
	require.NotEmpty(t, blocks)
	slack := int64(40)
	for _, b := range blocks {
		require.LessOrEqual(t, b.tc-first[b.cluster], interval.Milliseconds()+slack, "cluster %d too long", b.cluster)
	}
	require.True(t, sc.hasCues, "a cleanly stopped file has Cues")
	if video {
		require.Positive(t, keys)
	}
	t.Logf("%d blocks in %d clusters, %d key frames", len(blocks), len(first), keys)
}
