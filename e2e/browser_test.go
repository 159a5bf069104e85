package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

// chromiumPath is where Debian installs chromium; scripts/test installs it.
const chromiumPath = "/usr/bin/chromium"

// TestBrowserClass drives the class page in headless Chromium: the teacher
// goes live with a fake camera, two students (one from the invite link,
// one with a personal token) watch the video play, and a chat message
// typed by one student reaches the other student and the teacher.
func TestBrowserClass(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServer(t, "open")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	class, err := client.CreateClass(ctx, srv.base, "Browser class", "Ms Teacher")
	require.NoError(t, err)
	bobToken := srv.token(t, class.Room, auth.RoleStudent, "Bob")

	b := newBrowser(t, chromium)
	teacher := b.open(t, "teacher", srv.base+class.TeacherURL)
	ada := b.open(t, "ada", srv.base+withQuery(class.StudentURL, "name=Ada"))
	bob := b.open(t, "bob", srv.base+"/room/"+class.Room+"#token="+bobToken)

	teacher.goLive(t)
	for _, st := range []*tab{ada, bob} {
		st.waitVideoPlaying(t)
	}
	// Chromium's subscriptions are sealed and sent the direct way
	// (sfu/direct.go), not through pion's per-packet path.
	n := &node{server: srv, name: "server"}
	require.GreaterOrEqual(t, metric(t, n, "lectern_subscribers_direct"), 2.0)
	require.Equal(t, metric(t, n, "lectern_subscribers"), metric(t, n, "lectern_subscribers_direct"))

	const msg = "hello from Ada"
	ada.do(t, "send chat",
		chromedp.WaitEnabled(chromedp.CSS(`[data-testid="chat-input"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="chat-input"]`), msg),
		chromedp.Click(chromedp.CSS(`[data-testid="chat-send"]`)))
	for _, tb := range []*tab{bob, teacher, ada} {
		tb.waitChat(t, msg)
	}
}

// findChromium fails, never skips: a missing browser is a broken setup.
func findChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatalf("chromium not found at %s or on PATH: run scripts/test, which installs it", chromiumPath)
	return ""
}

// withQuery adds a query to a link before its fragment.
func withQuery(link, query string) string {
	path, frag, _ := strings.Cut(link, "#")
	return path + "?" + query + "#" + frag
}

// browser is one headless Chromium with a fresh profile.
type browser struct {
	ctx       context.Context
	artifacts string
	mu        sync.Mutex
	tabs      []*tab
}

func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Host candidates as plain addresses (no mDNS queries on the
		// network), loopback included, so ICE stays on this machine.
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns,Translate"),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	b := &browser{ctx: bctx, artifacts: artifactDir(t)}
	// One cleanup, so the evidence is taken before any tab closes.
	t.Cleanup(func() {
		b.dumpOnFailure(t)
		b.mu.Lock()
		tabs := b.tabs
		b.mu.Unlock()
		for _, tb := range tabs {
			tb.cancel()
			<-tb.done
		}
		bcancel()
		acancel()
	})
	require.NoError(t, chromedp.Do(bctx), "start chromium")
	return b
}

// artifactDir keeps screenshots and console logs of a failed run: in
// $LECTERN_E2E_ARTIFACTS when set (kept after the run), else in a
// temporary directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("LECTERN_E2E_ARTIFACTS"); d != "" {
		d = filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return t.TempDir()
}

// tab is one page of the browser with its console log.
type tab struct {
	name    string
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	console []string
	done    chan struct{}
}

// open loads url in a new tab and records its console.
func (b *browser) open(t *testing.T, name, url string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	tb := &tab{name: name, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	b.mu.Lock()
	b.tabs = append(b.tabs, tb)
	b.mu.Unlock()
	messages := chromedp.Console(ctx) // opens the tab
	go func() {
		defer close(tb.done)
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m.Time.Format("15:04:05.000")+" "+m.String())
			tb.mu.Unlock()
		}
	}()
	tb.do(t, "navigate", chromedp.Navigate(url))
	return tb
}

// do runs steps with a timeout, failing the test with the tab's name.
func (tb *tab) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, steps...), "%s: %s", tb.name, what)
}

// goLive presses the class page's Go live button once it is enabled.
func (tb *tab) goLive(t *testing.T) {
	t.Helper()
	tb.do(t, "go live",
		chromedp.WaitEnabled(chromedp.CSS(`[data-testid="go-live"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="go-live"]`)))
}

// eval evaluates a script (awaiting a promise) and decodes its result.
func eval[T any](tb *tab, script string) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](script, chromedp.EvalAwaitPromise))
}

type videoStats struct {
	VideoWidth    int `json:"videoWidth"`
	FramesDecoded int `json:"framesDecoded"`
}

// statsScript reads the teacher video's size and decoded frames from the
// page's test hook, or from the video element when the hook is missing.
const statsScript = `(async () => {
  const v = document.querySelector('[data-testid="teacher-video"]');
  const played = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0;
  if (window.lectern && window.lectern.stats) {
    const s = await window.lectern.stats();
    return {videoWidth: s.videoWidth || (v ? v.videoWidth : 0), framesDecoded: s.framesDecoded || played};
  }
  return {videoWidth: v ? v.videoWidth : 0, framesDecoded: played};
})()`

// waitVideoPlaying waits for the teacher's video to have a size and for
// its decoded frames to keep increasing.
func (tb *tab) waitVideoPlaying(t *testing.T) {
	t.Helper()
	var first videoStats
	waitFor(t, 60*time.Second, tb.name+": teacher video playing", func() (bool, string) {
		s, err := eval[videoStats](tb, statsScript)
		first = s
		return err == nil && s.VideoWidth > 0 && s.FramesDecoded > 0, fmt.Sprintf("%+v err=%v", s, err)
	})
	var last videoStats
	waitFor(t, 30*time.Second, tb.name+": frames increasing", func() (bool, string) {
		s, err := eval[videoStats](tb, statsScript)
		last = s
		return err == nil && s.FramesDecoded >= first.FramesDecoded+30,
			fmt.Sprintf("from %d to %+v err=%v", first.FramesDecoded, s, err)
	})
	t.Logf("%s: teacher video %d px wide, %d then %d frames decoded", tb.name, last.VideoWidth,
		first.FramesDecoded, last.FramesDecoded)
}

// waitChat waits for a chat message with text in the tab's chat log.
func (tb *tab) waitChat(t *testing.T, text string) {
	t.Helper()
	quoted, _ := json.Marshal(text)
	script := `Array.from(document.querySelectorAll('[data-testid="chat-log"] [data-testid="chat-message"]'))` +
		`.some(e => e.textContent.includes(` + string(quoted) + `))`
	waitFor(t, 30*time.Second, tb.name+": chat message", func() (bool, string) {
		ok, err := eval[bool](tb, script)
		return err == nil && ok, fmt.Sprintf("err=%v", err)
	})
}

// dumpOnFailure saves every tab's screenshot, console and page state.
func (b *browser) dumpOnFailure(t *testing.T) {
	if !t.Failed() {
		return
	}
	b.mu.Lock()
	tabs := append([]*tab(nil), b.tabs...)
	b.mu.Unlock()
	for _, tb := range tabs {
		ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err == nil {
			p := filepath.Join(b.artifacts, tb.name+".png")
			if os.WriteFile(p, png, 0o644) == nil {
				t.Logf("%s: screenshot %s", tb.name, p)
			}
		}
		state, err := eval[string](tb, `JSON.stringify(window.lectern ? window.lectern.state() : null)`)
		t.Logf("%s: page state %s (err=%v)", tb.name, state, err)
		tb.mu.Lock()
		log := strings.Join(tb.console, "\n")
		tb.mu.Unlock()
		_ = os.WriteFile(filepath.Join(b.artifacts, tb.name+"-console.log"), []byte(log), 0o644)
		t.Logf("%s: console:\n%s", tb.name, log)
	}
}
