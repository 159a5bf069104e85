package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"lectern/app"
	"lectern/auth"
	"lectern/client"
	"lectern/config"
)

// cutProxy forwards TCP connections from a port of 127.0.0.1 to a node,
// so that a test can cut a browser's connections as a network would,
// while the node runs on.
type cutProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	pairs  map[*proxyPair]struct{}
	held   []net.Conn // node sides kept open by cut(true)
	closed bool
}

type proxyPair struct {
	client, node net.Conn
	keepNode     bool // guarded by cutProxy.mu
}

// startProxy forwards to target (host:port); it stops when the test ends.
func startProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, target: target, pairs: map[*proxyPair]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.stop)
	return p
}

func (p *cutProxy) base() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		n, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		pair := &proxyPair{client: c, node: n}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = n.Close()
			return
		}
		p.pairs[pair] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pair, n, c)
		go p.pipe(pair, c, n)
	}
}

// pipe copies one direction; the first direction to end closes the pair,
// but leaves the node side open when the pair was cut with keepNode.
func (p *cutProxy) pipe(pair *proxyPair, dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	p.mu.Lock()
	keep := pair.keepNode
	delete(p.pairs, pair)
	p.mu.Unlock()
	_ = pair.client.Close()
	if !keep {
		_ = pair.node.Close()
	}
}

// cut drops every connection: the browser sees its websocket closed
// without a close frame. With keepNode the node's side stays open and
// silent, as when a phone loses its network: the node still counts the
// old connection as live when the page comes back.
func (p *cutProxy) cut(keepNode bool) {
	p.mu.Lock()
	pairs := make([]*proxyPair, 0, len(p.pairs))
	for pair := range p.pairs {
		pair.keepNode = keepNode
		if keepNode {
			p.held = append(p.held, pair.node)
		}
		pairs = append(pairs, pair)
	}
	p.mu.Unlock()
	for _, pair := range pairs {
		_ = pair.client.Close()
		if !keepNode {
			_ = pair.node.Close()
		}
	}
}

func (p *cutProxy) stop() {
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cut(false)
	p.mu.Lock()
	held := p.held
	p.held = nil
	p.mu.Unlock()
	for _, c := range held {
		_ = c.Close()
	}
	p.wg.Wait()
}

// openTeacherLive opens the teacher's page at base, goes live with the
// camera and shares the screen; it returns the page's state once both
// are on air.
func openTeacherLive(t *testing.T, br *browser, base, room, token string) (*tab, pageState) {
	t.Helper()
	teacher := br.open(t, "teacher", base+"/room/"+room+"#token="+token)
	teacher.goLive(t)
	teacher.do(t, "share the screen",
		chromedp.WaitEnabled(chromedp.CSS(`[data-testid="share-screen"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="share-screen"]`)))
	st := teacher.waitState(t, 60*time.Second, "camera and screen on air", func(s pageState) bool {
		return s.Publishing["camera"].Status == "live" && s.Publishing["screen"].Status == "live"
	})
	require.NotEmpty(t, st.Publishing["camera"].Tracks)
	require.NotEmpty(t, st.Publishing["screen"].Tracks)
	_, err := eval[bool](teacher, `window.__sameDocument = true`)
	require.NoError(t, err)
	return teacher, st
}

// waitRepublished waits until the teacher's page is on air again with
// new streams that send the very tracks it sent before, in the same
// document (no reload, no new camera or screen prompt).
func waitRepublished(t *testing.T, teacher *tab, before pageState, timeout time.Duration) pageState {
	t.Helper()
	after := teacher.waitState(t, timeout, "camera and screen on air again", func(s pageState) bool {
		for _, label := range []string{"camera", "screen"} {
			pub := s.Publishing[label]
			if pub.Status != "live" || pub.Stream == before.Publishing[label].Stream {
				return false
			}
		}
		return s.Connected
	})
	for _, label := range []string{"camera", "screen"} {
		require.Equal(t, before.Publishing[label].Tracks, after.Publishing[label].Tracks, "the same %s tracks", label)
	}
	same, err := eval[bool](teacher, `window.__sameDocument === true`)
	require.NoError(t, err)
	require.True(t, same, "the teacher's page did not reload")
	return after
}

// TestBrowserReconnectRepublishes: the teacher's websocket drops while
// the node runs on (the teacher's network, here a proxy, cuts it). The
// node ends the teacher's streams; the page reconnects and puts the same
// camera and screen tracks on air again without a click, and a student
// sees both again.
func TestBrowserReconnectRepublishes(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServer(t, "tokens")
	proxy := startProxy(t, srv.app.Addr().String())
	room := newRoom()

	br := newBrowser(t, chromium)
	teacher, before := openTeacherLive(t, br, proxy.base(), room, srv.token(t, room, auth.RoleTeacher, "Ms Teacher"))
	student := br.open(t, "student", srv.base+"/room/"+room+"#token="+srv.token(t, room, auth.RoleStudent, "Sam"))
	oldCam := student.waitNewVideo(t, "", 60*time.Second)
	oldScreen := student.waitNewScreen(t, "", 60*time.Second)

	proxy.cut(false)
	start := time.Now()
	waitRepublished(t, teacher, before, 60*time.Second)
	student.waitNewVideo(t, oldCam, 60*time.Second)
	student.waitNewScreen(t, oldScreen, 60*time.Second)
	t.Logf("camera and screen back on the student's page %.1f s after the cut", time.Since(start).Seconds())
}

// startNodeAt runs a node on a given HTTP port with a given data
// directory (its token secret), so that it can be started again in its
// place; stop shuts it down gracefully, as for a restart.
func startNodeAt(t *testing.T, port int, data string) (*server, func()) {
	t.Helper()
	cfg := config.Default()
	cfg.HTTP = fmt.Sprintf("127.0.0.1:%d", port)
	cfg.UDPPort, cfg.TCPPort, cfg.PublicIP = 0, 0, "127.0.0.1"
	cfg.Data, cfg.Auth, cfg.LogLevel = data, "tokens", "warn"
	require.NoError(t, cfg.Validate())
	a, err := app.New(cfg, testLogger(t))
	require.NoError(t, err)
	require.NoError(t, a.Start())
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
	}
	t.Cleanup(stop) // Shutdown is idempotent
	return &server{app: a, base: a.BaseURL(), signer: a.Signer()}, stop
}

// TestBrowserRestartRepublishes: the class's only node restarts on the
// same address and is away for longer than the 15 s during which the page
// republishes a stream the server ended on its own. The node said it was
// shutting down before ending the teacher's streams, so the page puts
// them on air again when it is back, and the student sees them.
func TestBrowserRestartRepublishes(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	port, data := freePort(t), t.TempDir()
	srv, stop := startNodeAt(t, port, data)
	room := newRoom()

	br := newBrowser(t, chromium)
	teacher, before := openTeacherLive(t, br, srv.base, room, srv.token(t, room, auth.RoleTeacher, "Ms Teacher"))
	student := br.open(t, "student", srv.base+"/room/"+room+"#token="+srv.token(t, room, auth.RoleStudent, "Sam"))
	oldCam := student.waitNewVideo(t, "", 60*time.Second)

	stop()
	teacher.waitState(t, 30*time.Second, "disconnected", func(s pageState) bool { return !s.Connected })
	time.Sleep(17 * time.Second) // the length of the outage, not a wait for a condition
	startNodeAt(t, port, data)   // same address, same secret: the pages' tokens hold
	waitRepublished(t, teacher, before, 60*time.Second)
	student.waitNewVideo(t, oldCam, 60*time.Second)
}

// TestBrowserSpeakerReconnect: a student invited to speak, on air, loses
// the connection. When the node still counts the old connection (it never
// saw it drop), the invitation holds and the page republishes its camera;
// when the node saw the student leave, the invitation is gone and the
// page turns the camera off and says so.
func TestBrowserSpeakerReconnect(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServer(t, "tokens")
	proxy := startProxy(t, srv.app.Addr().String())
	room := newRoom()
	teacher := srv.dial(t, srv.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})

	br := newBrowser(t, chromium)
	ada := br.open(t, "ada", proxy.base()+"/room/"+room+"#token="+srv.token(t, room, auth.RoleStudent, "Ada"))
	me := ada.waitState(t, 60*time.Second, "joined", func(s pageState) bool { return s.Connected && s.You != nil })
	require.NoError(t, teacher.Invite(me.You.ID))
	ada.do(t, "speak",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="speak"]`)),
		chromedp.WaitEnabled(chromedp.CSS(`[data-testid="speak"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="speak"]`)))
	before := ada.waitState(t, 60*time.Second, "camera on air", func(s pageState) bool {
		return s.Publishing["camera"].Status == "live"
	})
	require.NotEmpty(t, before.Publishing["camera"].Tracks)
	first := teacherHears(t, teacher, me.You.ID, "")

	t.Run("the invitation holds: the camera goes on", func(t *testing.T) {
		proxy.cut(true)
		after := ada.waitState(t, 60*time.Second, "camera on air again", func(s pageState) bool {
			cam := s.Publishing["camera"]
			return s.Connected && cam.Status == "live" && cam.Stream != before.Publishing["camera"].Stream
		})
		require.True(t, after.You.CanPublish)
		require.Equal(t, before.Publishing["camera"].Tracks, after.Publishing["camera"].Tracks)
		teacherHears(t, teacher, me.You.ID, first)
	})

	t.Run("the invitation is gone: the camera goes off", func(t *testing.T) {
		proxy.cut(false)
		ada.waitState(t, 60*time.Second, "reconnected, not on air", func(s pageState) bool {
			return s.Connected && s.You != nil && !s.You.CanPublish && s.Publishing["camera"].Status == "off"
		})
		ada.waitScript(t, "camera off, told why", `(() => {
  const toasts = Array.from(document.querySelectorAll('[data-testid="toast"]'), (e) => e.textContent);
  return document.querySelector('[data-testid="self-tile"]') === null
    && document.querySelector('[data-testid="invited"]').hidden
    && toasts.some((s) => s.includes('camera and microphone are off'));
})()`)
		waitFor(t, 30*time.Second, "the student's stream gone", func() (bool, string) {
			s := teacher.SubscriptionOf(me.You.ID, client.LabelCamera)
			return s == nil, "still subscribed"
		})
	})
}

// teacherHears waits until the Go teacher receives video of owner's
// camera on a stream other than old, and returns that stream.
func teacherHears(t *testing.T, teacher *client.Client, owner, old string) string {
	t.Helper()
	var id string
	waitFor(t, 60*time.Second, "the student's video at the teacher", func() (bool, string) {
		s := teacher.SubscriptionOf(owner, client.LabelCamera)
		if s == nil || s.ID() == old {
			return false, "no new subscription"
		}
		id = s.ID()
		v := s.Video()
		return v.Packets >= 30 && v.Keyframes > 0, fmt.Sprintf("%d packets, %d keyframes", v.Packets, v.Keyframes)
	})
	return id
}

// waitScript waits until a script evaluates to true in the tab.
func (tb *tab) waitScript(t *testing.T, what, script string) {
	t.Helper()
	waitFor(t, 30*time.Second, tb.name+": "+what, func() (bool, string) {
		ok, err := eval[bool](tb, script)
		return err == nil && ok, fmt.Sprintf("%v err=%v", ok, err)
	})
}
