package recording

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// testMedia holds the encoded test media TestMain makes with ffmpeg; it is
// written once before any test runs and only read afterwards.
var testMedia struct {
	vp8GOP30  string // 10 s VP8 320x240 30 fps, key frame every 30 frames (IVF)
	vp8GOP300 string // the same with a single key frame
	opus      string // 10 s Opus, 20 ms frames (Ogg)
	h264      string // 10 s H.264 baseline (Annex B)
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runCrashChild())
	}
	dir, err := os.MkdirTemp("", "lectern-recording-media-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if onlyFuzzing() {
		code = m.Run() // the fuzz targets need no test media
	} else if err := makeMedia(dir); err != nil {
		fmt.Fprintln(os.Stderr, "making test media (ffmpeg is required):", err)
	} else {
		code = m.Run()
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "goroutine leak:", err)
				code = 1
			}
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// onlyFuzzing: the run fuzzes one target and runs no test (scripts/fuzz:
// -run '^$' -fuzz FuzzX, in the coordinator and its workers alike), so
// the media, seconds of encoding per process, would go unused.
func onlyFuzzing() bool {
	flag.Parse()
	run, fuzz := flag.Lookup("test.run"), flag.Lookup("test.fuzz")
	return run != nil && fuzz != nil && run.Value.String() == "^$" && fuzz.Value.String() != ""
}

func makeMedia(dir string) error {
	testMedia.vp8GOP30 = filepath.Join(dir, "gop30.ivf")
	testMedia.vp8GOP300 = filepath.Join(dir, "gop300.ivf")
	testMedia.opus = filepath.Join(dir, "sine.ogg")
	testMedia.h264 = filepath.Join(dir, "video.h264")
	src := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "10"}
	jobs := [][]string{
		append(append([]string{}, src...), "-c:v", "libvpx", "-g", "30", "-deadline", "realtime", "-b:v", "400k", testMedia.vp8GOP30),
		append(append([]string{}, src...), "-c:v", "libvpx", "-g", "300", "-deadline", "realtime", "-b:v", "400k", testMedia.vp8GOP300),
		{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "10", "-c:a", "libopus",
			"-frame_duration", "20", "-b:a", "32k", testMedia.opus},
		append(append([]string{}, src...), "-c:v", "libx264", "-profile:v", "baseline", "-g", "30",
			"-bsf:v", "h264_mp4toannexb", "-f", "h264", testMedia.h264),
	}
	for _, args := range jobs {
		cmd := exec.Command("ffmpeg", append([]string{"-v", "error", "-y"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ffmpeg %v: %v: %s", args, err, out)
		}
	}
	return nil
}
