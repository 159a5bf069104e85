package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"lectern/auth"
)

// pagePub is one label of window.lectern.state().publishing.
type pagePub struct {
	Status string   `json:"status"`
	Stream string   `json:"stream"`
	Tracks []string `json:"tracks"`
}

// pageState is the part of window.lectern.state() these tests read.
type pageState struct {
	Connected  bool               `json:"connected"`
	Node       string             `json:"node"`
	Server     string             `json:"server"`
	Publishing map[string]pagePub `json:"publishing"`
	You        *struct {
		ID         string `json:"id"`
		CanPublish bool   `json:"can_publish"`
	} `json:"you"`
}

func (tb *tab) state() (pageState, error) {
	return eval[pageState](tb, `window.lectern.state()`)
}

// waitState polls the page's state until ok holds.
func (tb *tab) waitState(t *testing.T, timeout time.Duration, what string, ok func(pageState) bool) pageState {
	t.Helper()
	var last pageState
	waitFor(t, timeout, tb.name+": "+what, func() (bool, string) {
		s, err := tb.state()
		last = s
		return err == nil && ok(s), fmt.Sprintf("%+v err=%v", s, err)
	})
	return last
}

// slotStats are the page's stats of one received video.
type slotStats struct {
	Stream        string `json:"stream"`
	VideoWidth    int    `json:"videoWidth"`
	FramesDecoded int    `json:"framesDecoded"`
}

// slotScripts read the teacher's camera and screen from the page's stats.
var slotScripts = map[string]string{
	"camera": `window.lectern.stats().then((s) => ({stream: s.stream, videoWidth: s.videoWidth, framesDecoded: s.framesDecoded}))`,
	"screen": `window.lectern.stats().then((s) => s.screen)`,
}

// waitNewVideo waits until the tab plays the teacher's camera from a
// stream other than old (an empty old: any stream), with its decoded
// frames increasing, and returns that stream's id.
func (tb *tab) waitNewVideo(t *testing.T, old string, timeout time.Duration) string {
	t.Helper()
	return tb.waitNewSlot(t, "camera", old, timeout)
}

// waitNewScreen is waitNewVideo for the teacher's screen share.
func (tb *tab) waitNewScreen(t *testing.T, old string, timeout time.Duration) string {
	t.Helper()
	return tb.waitNewSlot(t, "screen", old, timeout)
}

func (tb *tab) waitNewSlot(t *testing.T, slot, old string, timeout time.Duration) string {
	t.Helper()
	script := slotScripts[slot]
	var first slotStats
	waitFor(t, timeout, tb.name+": teacher "+slot+" from a new stream", func() (bool, string) {
		s, err := eval[slotStats](tb, script)
		first = s
		return err == nil && s.Stream != "" && s.Stream != old && s.VideoWidth > 0 && s.FramesDecoded > 0,
			fmt.Sprintf("%+v (old %q) err=%v", s, old, err)
	})
	// Screens change little, and an encoder sends few frames of a still one.
	need := map[string]int{"camera": 30, "screen": 3}[slot]
	waitFor(t, 60*time.Second, tb.name+": "+slot+" frames increasing", func() (bool, string) {
		s, err := eval[slotStats](tb, script)
		return err == nil && s.Stream == first.Stream && s.FramesDecoded >= first.FramesDecoded+need,
			fmt.Sprintf("from %+v to %+v err=%v", first, s, err)
	})
	t.Logf("%s: teacher %s from %s, %d px wide", tb.name, slot, first.Stream, first.VideoWidth)
	return first.Stream
}

// TestBrowserClusterFailover: a teacher's page on node A is live with its
// camera; a student's page on node B and another on A watch. A dies. The
// teacher's page moves to another node by itself, without reloading, and
// puts the very same camera tracks on air again; the student on A, who
// holds no media, loads the class page from another node; both students
// see the teacher again.
func TestBrowserClusterFailover(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	nodes := startCluster(t, 0, 0, 0)
	a, b := nodes[0], nodes[1]
	room := newRoom()

	br := newBrowser(t, chromium)
	teacher := br.open(t, "teacher", a.base+"/room/"+room+"#token="+a.token(t, room, auth.RoleTeacher, "Ms Teacher"))
	teacher.do(t, "go live",
		chromedp.WaitEnabled(chromedp.CSS(`[data-testid="go-live"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="go-live"]`)))
	before := teacher.waitState(t, 60*time.Second, "camera on air", func(s pageState) bool {
		return s.Publishing["camera"].Status == "live"
	})
	require.Equal(t, "a", before.Node)
	require.NotEmpty(t, before.Publishing["camera"].Tracks)
	sam := br.open(t, "sam", b.base+"/room/"+room+"#token="+b.token(t, room, auth.RoleStudent, "Sam"))
	ann := br.open(t, "ann", a.base+"/room/"+room+"#token="+a.token(t, room, auth.RoleStudent, "Ann"))
	samStream := sam.waitNewVideo(t, "", 60*time.Second)
	annStream := ann.waitNewVideo(t, "", 60*time.Second)
	// A mark that a reload or a navigation would wipe out.
	_, err := eval[bool](teacher, `window.__sameDocument = true`)
	require.NoError(t, err)

	a.kill()
	start := time.Now()
	after := teacher.waitState(t, 90*time.Second, "on air again on another node", func(s pageState) bool {
		cam := s.Publishing["camera"]
		return s.Connected && s.Node != "" && s.Node != "a" && cam.Status == "live" &&
			cam.Stream != before.Publishing["camera"].Stream
	})
	t.Logf("teacher on air again on node %s (%s) %.1f s after the kill", after.Node, after.Server,
		time.Since(start).Seconds())
	same, err := eval[bool](teacher, `window.__sameDocument === true && location.origin === `+strconv.Quote(a.base))
	require.NoError(t, err)
	require.True(t, same, "the teacher's page stayed where it was, without reloading")
	require.Equal(t, before.Publishing["camera"].Tracks, after.Publishing["camera"].Tracks,
		"the same camera and microphone tracks are on air")
	sam.waitNewVideo(t, samStream, 90*time.Second)
	t.Logf("sam sees the teacher again %.1f s after the kill", time.Since(start).Seconds())
	ann.waitNewVideo(t, annStream, 90*time.Second)
	origin, err := eval[string](ann, `location.origin`)
	require.NoError(t, err)
	require.NotEqual(t, a.base, origin, "ann's page moved to a live node")
	t.Logf("ann moved to %s and sees the teacher again %.1f s after the kill", origin, time.Since(start).Seconds())

	// What let the teacher's page move: B accepts the websocket of a page
	// of A, dead or not, and of no other site.
	for origin, ok := range map[string]bool{a.base: true, "http://evil.example": false} {
		ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(b.base, "http")+"/ws",
			http.Header{"Origin": {origin}})
		if ok {
			require.NoError(t, err, origin)
			_ = ws.Close()
		} else {
			require.Error(t, err, origin)
			require.Equal(t, http.StatusForbidden, resp.StatusCode)
		}
		if resp != nil {
			_ = resp.Body.Close()
		}
	}
}
