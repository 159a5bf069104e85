package recording

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

// recordAV1 records the AV1 stream of one encoder with Opus and returns
// the file's path.
func recordAV1(t *testing.T, encoder []string) string {
	t.Helper()
	ivf := makeAV1(t, encoder)
	r, _ := newTestRecorder(t, Options{})
	video, audio := newVideoSource("v", webrtc.MimeTypeAV1), newAudioSource("a")
	require.NoError(t, r.Attach(video, audio))
	pkts, _ := av1Streams(t, video, audio, ivf)
	feed(t, pkts)
	info, err := r.Stop()
	require.NoError(t, err)
	return info.Path
}

// playback is what the page reports about its <video>.
type playback struct {
	Time   float64 `json:"time"`
	Width  int     `json:"width"`
	Frames int     `json:"frames"`
	Ended  bool    `json:"ended"`
	Error  int     `json:"error"` // MediaError code, 0 for none
}

const playbackJS = `(() => { const v = document.querySelector('video');
  return {time: v.currentTime, width: v.videoWidth, frames: v.getVideoPlaybackQuality().totalVideoFrames,
    ended: v.ended, error: v.error ? v.error.code : 0}; })()`

// TestAV1PlaysInChromium: Chromium's <video> plays the AV1 WebM files to
// the end, decoding their frames, served over HTTP from 127.0.0.1.
func TestAV1PlaysInChromium(t *testing.T) {
	t.Parallel()
	chromium, err := exec.LookPath("chromium")
	require.NoError(t, err, "chromium is required")
	files := map[string]string{}
	for i, enc := range av1Encoders {
		files["/"+string(rune('a'+i))+".webm"] = recordAV1(t, enc.args)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if path, ok := files[r.URL.Path]; ok {
			http.ServeFile(w, r, path) // range requests, as a player seeks
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><video muted autoplay src="` + r.URL.Query().Get("f") + `"></video>`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.UserDataDir(t.TempDir()), chromedp.Headless,
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	for i, enc := range av1Encoders {
		name := "/" + string(rune('a'+i)) + ".webm"
		_, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/?f="+name))
		require.NoError(t, err, enc.name)
		// The condition runs on its own goroutine: it only reports.
		var last atomic.Pointer[playback]
		require.Eventually(t, func() bool {
			p, err := chromedp.Run(ctx, chromedp.Evaluate[playback](playbackJS))
			if err != nil {
				return false
			}
			last.Store(&p)
			return p.Ended || p.Error != 0
		}, waitFor, 100*time.Millisecond, "%s plays to the end", enc.name)
		p := *last.Load()
		require.Zero(t, p.Error, "%s: media error", enc.name)
		require.Equal(t, 320, p.Width, enc.name)
		require.InDelta(t, 3, p.Time, 0.5, enc.name)
		require.Greater(t, p.Frames, 60, "%s: frames decoded", enc.name)
		t.Logf("%s: played %.2f s, %d frames decoded", enc.name, p.Time, p.Frames)
	}
}
