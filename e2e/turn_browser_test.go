package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"lectern/client"
	"lectern/config"
)

// TestBrowserThroughTURN: on a node with TURN, the class page hands its
// peer connections the welcome's TURN servers. A student whose tab has
// fallen back to relay-only (what the page remembers after a failed
// connection) plays the teacher's video through the node's relay, and
// the teacher's participant list says how each student connects.
func TestBrowserThroughTURN(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServerWith(t, "open", func(c *config.Config) {
		c.TURN, c.TURNUDPPort, c.TURNTCPPort, c.TURNTLSPort = true, 0, 0, -1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	class, err := client.CreateClass(ctx, srv.base, "Firewalled class", "Ms Teacher")
	require.NoError(t, err)

	b := newBrowser(t, chromium)
	teacher := b.open(t, "teacher", srv.base+class.TeacherURL)
	direct := b.open(t, "direct", srv.base+withQuery(class.StudentURL, "name=Dina"))
	relayed := b.open(t, "relayed", srv.base+withQuery(class.StudentURL, "name=Rene"))
	_, err = eval[bool](relayed, `sessionStorage.setItem('lectern.icePolicy', 'relay'), true`)
	require.NoError(t, err)
	relayed.do(t, "reload relay-only", chromedp.Reload())
	teacher.goLive(t)
	for _, st := range []*tab{direct, relayed} {
		st.waitVideoPlaying(t)
	}
	require.NotZero(t, srv.app.TURN().Stats().Active, "the relayed student uses the node's TURN")
	waitFor(t, 20*time.Second, "the teacher's list shows each student's path", func() (bool, string) {
		paths, err := eval[map[string]string](teacher, `Object.fromEntries([...document.querySelectorAll('[data-testid="participant"]')]
		  .map((li) => [li.querySelector('.person-name').textContent, li.querySelector('[data-testid="media-path"]')?.dataset.connection ?? '']))`)
		return err == nil && paths["Rene"] == "relay/udp" && paths["Dina"] == "host/udp", toString(paths, err)
	})
	// Students see no one's path.
	n, err := eval[int](direct, `document.querySelectorAll('[data-testid="media-path"]').length`)
	require.NoError(t, err)
	require.Zero(t, n)
}

func toString(v any, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%v", v)
}
