package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

// TestRecordingBrowser drives recording from the teacher's page: the
// record buttons start and stop it while a pion teacher publishes, a
// student's page shows the indicator, and the replay page opened from a
// link the teacher minted plays the recording in headless Chromium.
func TestRecordingBrowser(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServer(t, "tokens")
	room := newRoom()
	pionTeacher := srv.dial(t, srv.token(t, room, auth.RoleTeacher, "Ms Pion"), client.Options{})
	publishClip(t, pionTeacher, clipIVF, clipOgg)

	b := newBrowser(t, chromium)
	teacherTok := srv.token(t, room, auth.RoleTeacher, "Ms Page")
	teacher := b.open(t, "teacher", srv.base+"/room/"+room+"#token="+teacherTok)
	student := b.open(t, "student", srv.base+"/room/"+room+"#token="+srv.token(t, room, auth.RoleStudent, "Ada"))
	student.waitVideoPlaying(t)
	const indicatorShown = `(() => { const e = document.querySelector('[data-testid="recording-indicator"]');` +
		` return !!e && !e.hidden && e.offsetParent !== null; })()`
	shown, err := eval[bool](student, indicatorShown)
	require.NoError(t, err)
	require.False(t, shown, "no indicator before recording")

	teacher.do(t, "record", chromedp.WaitVisible(chromedp.CSS(`[data-testid="record-start"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="record-start"]`)))
	waitFor(t, 15*time.Second, "the student sees the recording indicator", func() (bool, string) {
		ok, err := eval[bool](student, indicatorShown)
		return err == nil && ok, fmt.Sprintf("err=%v", err)
	})
	time.Sleep(5 * time.Second) // the length of the recording
	teacher.do(t, "stop recording", chromedp.WaitVisible(chromedp.CSS(`[data-testid="record-stop"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="record-stop"]`)))
	waitFor(t, 15*time.Second, "the indicator goes", func() (bool, string) {
		ok, err := eval[bool](student, indicatorShown)
		return err == nil && !ok, fmt.Sprintf("err=%v", err)
	})

	var list struct {
		Recordings []recEntry `json:"recordings"`
	}
	apiCall(t, http.MethodGet, srv.base+"/api/recordings", operatorToken(t, srv.signer), http.StatusOK, &list)
	require.Len(t, list.Recordings, 1)
	id := list.Recordings[0].ID
	var link struct {
		URL string `json:"url"`
	}
	apiCall(t, http.MethodPost, srv.base+"/api/recordings/"+id+"/link", teacherTok, http.StatusCreated, &link)

	replay := b.open(t, "replay", srv.base+link.URL)
	type playback struct {
		Time   float64 `json:"time"`
		Width  int     `json:"width"`
		Frames int     `json:"frames"`
		Hash   string  `json:"hash"`
	}
	const play = `(async () => { const v = document.querySelector('[data-testid="replay-video"]');
	  if (!v || !v.src) return {time: 0, width: 0, frames: 0, hash: location.hash};
	  v.muted = true; if (v.paused) { try { await v.play(); } catch (e) {} }
	  return {time: v.currentTime, width: v.videoWidth, frames: v.getVideoPlaybackQuality().totalVideoFrames, hash: location.hash};
	})()`
	var first playback
	waitFor(t, 30*time.Second, "the replay plays", func() (bool, string) {
		p, err := eval[playback](replay, play)
		first = p
		return err == nil && p.Width > 0 && p.Time > 0.2 && p.Frames > 0, fmt.Sprintf("%+v err=%v", p, err)
	})
	require.Empty(t, first.Hash, "the token leaves the address bar")
	waitFor(t, 30*time.Second, "playback goes on", func() (bool, string) {
		p, err := eval[playback](replay, play)
		return err == nil && p.Time > first.Time+1 && p.Frames > first.Frames+10,
			fmt.Sprintf("from %+v to %+v err=%v", first, p, err)
	})
	// Seeking uses range requests: jump near the end and play on.
	_, err = eval[bool](replay, `(() => { const v = document.querySelector('[data-testid="replay-video"]'); v.currentTime = 3.5; return true; })()`)
	require.NoError(t, err)
	waitFor(t, 30*time.Second, "playback after a seek", func() (bool, string) {
		p, err := eval[playback](replay, play)
		return err == nil && p.Time > 3.6, fmt.Sprintf("%+v err=%v", p, err)
	})
}
