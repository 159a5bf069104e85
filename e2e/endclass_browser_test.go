package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"lectern/auth"
)

// pageNotice is the class page's closing notice.
type pageNotice struct {
	Shown     bool   `json:"shown"`
	Kind      string `json:"kind"`
	Title     string `json:"title"`
	Connected bool   `json:"connected"`
}

const noticeScript = `(() => {
  const n = document.querySelector('[data-testid="notice"]');
  return {shown: !document.getElementById('screen-notice').hidden, kind: n.dataset.kind || '',
    title: document.querySelector('[data-testid="notice-title"]').textContent,
    connected: window.lectern.state().connected};
})()`

// TestBrowserConsoleEndsClass: in the operator console in Chromium, "End
// class" asks for a confirmation, and "Cancel" ends nothing; confirmed,
// the class ends: the student's class page in Chromium says "The class
// has ended" and stays so (no reconnect), the pion teacher's connection
// closes with 4010, and the class leaves the console.
func TestBrowserConsoleEndsClass(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServer(t, "tokens")
	room, teacher, _ := liveClass(t, srv)
	b := newBrowser(t, chromium)
	student := b.open(t, "student", srv.base+"/room/"+room+"#token="+srv.token(t, room, auth.RoleStudent, "Bea"))
	student.waitVideoPlaying(t)
	console := b.open(t, "operator", srv.base+"/operator#token="+operatorToken(t, srv.signer))

	row := fmt.Sprintf(`[data-testid="class-row"][data-room=%q]`, room)
	for _, button := range []string{"end-class", "end-class-cancel", "end-class"} {
		sel := row + ` [data-testid="` + button + `"]`
		console.do(t, "click "+button, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
	}
	n, err := eval[pageNotice](student, noticeScript)
	require.NoError(t, err)
	require.False(t, n.Shown, "the class goes on until the end is confirmed")
	require.True(t, n.Connected)
	sel := row + ` [data-testid="end-class-confirm"]`
	console.do(t, "confirm the end", chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))

	waitFor(t, 15*time.Second, "the student's page to say the class has ended", func() (bool, string) {
		n, err := eval[pageNotice](student, noticeScript)
		return err == nil && n.Shown && n.Kind == "class-ended" && n.Title == "The class has ended" && !n.Connected,
			fmt.Sprintf("%+v err=%v", n, err)
	})
	waitClassEnded(t, teacher, "the pion teacher")
	waitFor(t, 15*time.Second, "the class to leave the console", func() (bool, string) {
		gone, err := eval[bool](console, `!document.querySelector(`+fmt.Sprintf("%q", row)+`)`)
		return err == nil && gone, fmt.Sprintf("gone %v err=%v", gone, err)
	})
	// The page does not try again: for the next seconds (past the first
	// reconnect's backoff) the class stays closed on the node.
	op := operatorToken(t, srv.signer)
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		var rooms struct {
			Rooms []struct {
				Room string `json:"room"`
			} `json:"rooms"`
		}
		getJSON(t, srv.base+"/api/rooms", op, &rooms)
		for _, r := range rooms.Rooms {
			require.NotEqual(t, room, r.Room, "the page joined the ended class again")
		}
		n, err := eval[pageNotice](student, noticeScript)
		require.NoError(t, err)
		require.Equal(t, "class-ended", n.Kind)
		time.Sleep(200 * time.Millisecond) // the polling interval
	}
}
