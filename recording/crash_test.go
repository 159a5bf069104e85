package recording

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// childEnv makes the test binary a recording process the crash test kills.
const childEnv = "LECTERN_RECORDING_CRASH_CHILD"

// runCrashChild records into the directory named by childEnv, feeding the
// 10 s class in real time (arrival stamped by Deliver), and prints the
// file path once recording started. It never stops on its own before the
// parent kills it.
func runCrashChild() int {
	dir := os.Getenv(childEnv)
	testMedia.vp8GOP30, testMedia.opus = os.Getenv(childEnv+"_VP8"), os.Getenv(childEnv+"_OPUS")
	r, err := New(dir, Options{ID: "crash", Logger: zerolog.Nop()})
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	video, audio := newVideoSource("v", webrtc.MimeTypeVP8), newAudioSource("a")
	if err := r.Attach(video, audio); err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	tb := &childTB{}
	pkts := avStreams(tb, video, audio, 0, videoParams(1, 1000, 1), audioParams(2, 5000, 9))
	start := time.Now()
	fmt.Println("STARTED")
	for _, p := range pkts {
		time.Sleep(time.Until(start.Add(time.Duration(p.capture))))
		p.src.deliver(tb, p.raw, 0)
	}
	time.Sleep(time.Minute) // the parent kills us before this ends
	return 0
}

// TestCrashAndRepair kills a recording process with SIGKILL after 8 s:
// the file on disk plays up to within about two seconds of the kill, and
// Repair gives it an exact duration and a seek index.
func TestCrashAndRepair(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir,
		childEnv+"_VP8="+testMedia.vp8GOP30, childEnv+"_OPUS="+testMedia.opus)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "STARTED", strings.TrimSpace(line))
	time.Sleep(8 * time.Second) // the class runs for 8 s
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	path := filepath.Join(dir, "crash.webm")
	pr := ffprobe(t, path)
	require.Len(t, pr.Streams, 2)
	before := pr.duration(t)
	require.GreaterOrEqual(t, before, 6*time.Second, "the killed file keeps all but the last ~2 s")
	res, err := Repair(path)
	require.NoError(t, err)
	after := checkPlayable(t, path, []string{"video", "audio"}, res.Duration, 50*time.Millisecond)
	require.GreaterOrEqual(t, after.duration(t), 6*time.Second)
	require.Positive(t, res.Clusters)
	again, err := Repair(path)
	require.NoError(t, err)
	require.Equal(t, res.Duration, again.Duration, "Repair is idempotent")
	require.Zero(t, again.Truncated)
	t.Logf("killed at 8 s: ffprobe %v before repair, %v after (%d clusters, %d bytes cut)",
		before, after.duration(t), res.Clusters, res.Truncated)
}

// TestRepairTruncated: a file cut at any byte (a crash in the middle of
// a write) is repaired into one ffmpeg decodes without errors.
func TestRepairTruncated(t *testing.T) {
	t.Parallel()
	r, dir := newTestRecorder(t, Options{})
	video, audio := newVideoSource("v", webrtc.MimeTypeVP8), newAudioSource("a")
	require.NoError(t, r.Attach(video, audio))
	feed(t, avStreams(t, video, audio, t0, videoParams(1, 1000, 1), audioParams(2, 5000, 9)))
	info, err := r.Stop()
	require.NoError(t, err)
	full, err := os.ReadFile(info.Path)
	require.NoError(t, err)
	media := firstCluster(t, info.Path) // the header and the space reserved for Cues come first
	for _, frac := range []float64{0.33, 0.5, 0.77} {
		cut := filepath.Join(dir, fmt.Sprintf("cut-%v.webm", frac))
		n := media + int64(frac*float64(int64(len(full))-media))
		require.NoError(t, os.WriteFile(cut, full[:n], 0o600))
		res, err := Repair(cut)
		require.NoError(t, err)
		require.Positive(t, res.Truncated)
		want := time.Duration(frac * float64(10*time.Second))
		checkPlayable(t, cut, []string{"video", "audio"}, res.Duration, 50*time.Millisecond)
		requireNear(t, want, res.Duration, 1500*time.Millisecond, "repaired duration")
	}
	_, err = Repair(filepath.Join(dir, "missing.webm"))
	require.Error(t, err)
	junk := filepath.Join(dir, "junk.webm")
	require.NoError(t, os.WriteFile(junk, []byte("not a matroska file"), 0o600))
	_, err = Repair(junk)
	require.ErrorIs(t, err, ErrCorrupt)
}

// firstCluster is the file offset of the first cluster.
func firstCluster(t *testing.T, path string) int64 {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	require.NoError(t, err)
	sc := scanner{r: f, size: st.Size(), scale: 1_000_000}
	require.NoError(t, sc.scan())
	require.NotEmpty(t, sc.clusters)
	return sc.segData + sc.clusters[0].pos
}

// childTB lets the test helpers run in the child process.
type childTB struct{ testing.TB }

func (*childTB) Helper() {}
func (*childTB) Errorf(format string, args ...any) {
	fmt.Printf("ERR "+format+"\n", args...)
}
func (*childTB) FailNow() { os.Exit(2) }
