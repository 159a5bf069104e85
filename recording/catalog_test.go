package recording

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

func TestCatalogRoundTripAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := OpenCatalog(dir)
	require.NoError(t, err)
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	a := Info{ID: "a1", Room: "r", Teacher: "Ada", Label: "camera", Start: start, Duration: 90 * time.Second,
		Size: 1234, Codecs: []string{"VP8", "Opus"}, Path: filepath.Join(dir, "a1.webm"), Complete: true}
	b := a
	b.ID, b.Start, b.Label = "b2", start.Add(time.Hour), "screen"
	require.NoError(t, c.Put(a))
	require.NoError(t, c.Put(b))
	require.NoError(t, os.WriteFile(a.Path, []byte("x"), 0o600))

	c2, err := OpenCatalog(dir) // a restart
	require.NoError(t, err)
	got, err := c2.Get("a1")
	require.NoError(t, err)
	require.Equal(t, a, got)
	all, err := c2.List()
	require.NoError(t, err)
	require.Equal(t, []Info{b, a}, all, "newest first")

	_, err = c2.Get("nope")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = c2.Get("../x")
	require.ErrorIs(t, err, ErrBadID)
	require.ErrorIs(t, c2.Put(Info{ID: "a/b"}), ErrBadID)

	require.NoError(t, c2.Delete("a1"))
	_, err = os.Stat(a.Path)
	require.True(t, os.IsNotExist(err), "the media file goes with the entry")
	_, err = c2.Get("a1")
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, c2.Delete("a1"), ErrNotFound)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o600))
	all, err = c2.List()
	require.ErrorIs(t, err, ErrCorrupt, "a bad entry is reported")
	require.Equal(t, []Info{b}, all, "and hides no other")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		require.NotContains(t, e.Name(), ".tmp-", "no temporary files left")
	}
}

// TestCatalogRecover: a recorder with a catalog leaves an incomplete
// entry while writing; Recover at the next start repairs the file and
// completes the entry.
func TestCatalogRecover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := OpenCatalog(filepath.Join(dir, "catalog"))
	require.NoError(t, err)
	r, err := New(dir, Options{ID: "rec1", Room: "room", Teacher: "Ada", Catalog: c})
	require.NoError(t, err)
	video, audio := newVideoSource("v", webrtc.MimeTypeVP8), newAudioSource("a")
	require.NoError(t, r.Attach(video, audio))
	feed(t, avStreams(t, video, audio, t0, videoParams(1, 1000, 1), audioParams(2, 5000, 9)))
	require.Eventually(t, func() bool { _, err := c.Get("rec1"); return err == nil }, waitFor, tick)
	mid, err := c.Get("rec1")
	require.NoError(t, err)
	require.False(t, mid.Complete)
	require.Equal(t, []string{"VP8", "Opus"}, mid.Codecs)
	info, err := r.Stop()
	require.NoError(t, err)
	done, err := c.Get("rec1")
	require.NoError(t, err)
	require.Equal(t, info, done)
	require.True(t, done.Complete)

	// As if the process had died while writing: the entry is incomplete.
	done.Complete, done.Duration = false, 0
	require.NoError(t, c.Put(done))
	fixed, err := c.Recover()
	require.NoError(t, err)
	require.Len(t, fixed, 1)
	requireNear(t, info.Duration, fixed[0].Duration, 10*time.Millisecond, "recovered duration")
	got, err := c.Get("rec1")
	require.NoError(t, err)
	require.True(t, got.Complete)
}
