package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

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
// camera and a screen share; a student's page on node C, which receives
// both through two relays from A, and another on A watch. A dies. The
// teacher's page moves to B by itself, without reloading, and puts the
// very same camera and screen tracks on air again; the student on A, who
// holds no media, loads the class page from another node; the student on
// C sees both streams again, relayed from B now, and the student on A the
// camera.
func TestBrowserClusterFailover(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	nodes := startCluster(t, 0, 0, 0)
	a, b, c := nodes[0], nodes[1], nodes[2]
	room := newRoom()

	br := newBrowser(t, chromium)
	teacher, before := openTeacherLive(t, br, a.base, room, a.token(t, room, auth.RoleTeacher, "Ms Teacher"))
	require.Equal(t, "a", before.Node)
	sam := br.open(t, "sam", c.base+"/room/"+room+"#token="+c.token(t, room, auth.RoleStudent, "Sam"))
	ann := br.open(t, "ann", a.base+"/room/"+room+"#token="+a.token(t, room, auth.RoleStudent, "Ann"))
	samCam := sam.waitNewVideo(t, "", 60*time.Second)
	samScreen := sam.waitNewScreen(t, "", 60*time.Second)
	annStream := ann.waitNewVideo(t, "", 60*time.Second)
	// C pulls the camera and the screen from A: two relays between the
	// same two nodes.
	waitMetric(t, c, "lectern_relays_in", 2)
	waitMetric(t, a, "lectern_relays_out", 2)

	a.kill()
	start := time.Now()
	after := waitRepublished(t, teacher, before, 90*time.Second)
	t.Logf("teacher's camera and screen on air again on node %s (%s) %.1f s after the kill", after.Node, after.Server,
		time.Since(start).Seconds())
	// The page tries the other nodes in the order of its welcome's list,
	// sorted by id: B first. Sam, on C, is served through relays again.
	require.Equal(t, "b", after.Node)
	same, err := eval[bool](teacher, `location.origin === `+strconv.Quote(a.base))
	require.NoError(t, err)
	require.True(t, same, "the teacher's page stayed where it was")
	sam.waitNewVideo(t, samCam, 90*time.Second)
	sam.waitNewScreen(t, samScreen, 90*time.Second)
	t.Logf("sam sees the teacher's camera and screen again %.1f s after the kill", time.Since(start).Seconds())
	waitMetric(t, c, "lectern_relays_in", 2)
	waitMetric(t, b, "lectern_relays_out", 2)
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
