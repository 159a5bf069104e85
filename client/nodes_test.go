package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
)

// fakeNode is one node of a fake cluster. Each join gets what behave
// returns: "welcome" (a welcome listing nodes, then the connection stays
// until the client leaves or the node dies), "redirect" (to redirectTo,
// then close 4307) or "forbid" (close 4003).
type fakeNode struct {
	srv        *httptest.Server
	id         string
	behave     atomic.Value // string
	redirectTo atomic.Value // string
	nodes      atomic.Value // []string
	joins      atomic.Int32
	kick       chan Redirect // redirects one joined connection

	mu    sync.Mutex
	conns map[*websocket.Conn]bool
	wg    sync.WaitGroup
}

func startNode(t *testing.T, id, behave string) *fakeNode {
	n := &fakeNode{id: id, conns: map[*websocket.Conn]bool{}, kick: make(chan Redirect)}
	n.behave.Store(behave)
	n.redirectTo.Store("")
	n.nodes.Store([]string(nil))
	n.srv = httptest.NewServer(n)
	t.Cleanup(n.kill)
	return n
}

func (n *fakeNode) URL() string { return n.srv.URL }

// kill stops the node like a crash: its listener and every connection
// close without a close frame.
func (n *fakeNode) kill() {
	n.srv.Close()
	n.mu.Lock()
	for c := range n.conns {
		_ = c.Close()
	}
	n.mu.Unlock()
	n.wg.Wait()
}

func (n *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	n.wg.Add(1)
	defer n.wg.Done()
	n.mu.Lock()
	n.conns[conn] = true
	n.mu.Unlock()
	defer conn.Close()
	var join envelope
	if conn.ReadJSON(&join) != nil || join.Type != TypeJoin {
		return
	}
	n.joins.Add(1)
	switch n.behave.Load().(string) {
	case "redirect":
		writeMsg(conn, TypeRedirect, "", Redirect{URL: n.redirectTo.Load().(string), Reason: RedirectOrigin})
		closeWith(conn, CloseRedirect, "redirect")
		return
	case "forbid":
		closeWith(conn, CloseForbidden, "forbidden")
		return
	}
	me := Participant{ID: "p1", Name: "Ada", Role: "student"}
	writeMsg(conn, TypeWelcome, "", Welcome{Room: "r1", You: me, Nodes: n.nodes.Load().([]string), Node: n.id})
	n.joined(conn)
}

// joined serves a welcomed connection until the client leaves, the
// connection drops, or a redirect comes on kick. Only this goroutine
// writes to conn.
func (n *fakeNode) joined(conn *websocket.Conn) {
	reads, done := make(chan string), make(chan struct{})
	defer close(done)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(reads)
		for {
			var env envelope
			if conn.ReadJSON(&env) != nil {
				return
			}
			select {
			case reads <- env.Type:
			case <-done:
				return
			}
		}
	}()
	for {
		select {
		case typ, ok := <-reads:
			if !ok {
				return
			}
			if typ == TypeLeave {
				closeWith(conn, CloseNormal, "bye")
				return
			}
		case r := <-n.kick:
			writeMsg(conn, TypeRedirect, "", r)
			closeWith(conn, CloseRedirect, "redirect")
			return
		}
	}
}

// deadURL is a loopback address nothing listens on.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDialFollowsRedirect(t *testing.T) {
	t.Parallel()
	b := startNode(t, "b", "welcome")
	a := startNode(t, "a", "redirect")
	a.redirectTo.Store(b.URL() + "/")
	var seen atomic.Value
	c, err := Dial(testCtx(t), a.URL(), "tok", Options{OnEvent: func(ev Event) {
		if r, ok := ev.Data.(*Redirect); ok {
			seen.Store(*r)
		}
	}})
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, b.URL(), c.BaseURL())
	require.Equal(t, "b", c.Welcome().Node)
	require.Equal(t, Redirect{URL: b.URL() + "/", Reason: RedirectOrigin}, seen.Load())
	require.EqualValues(t, 1, a.joins.Load())
	require.EqualValues(t, 1, b.joins.Load())
}

func TestDialFallsBackToOtherNodes(t *testing.T) {
	t.Parallel()
	b := startNode(t, "b", "welcome")
	c, err := Dial(testCtx(t), deadURL(t), "tok", Options{Nodes: []string{deadURL(t), b.URL()}})
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, b.URL(), c.BaseURL())
}

func TestDialNoNodeReachable(t *testing.T) {
	t.Parallel()
	_, err := Dial(testCtx(t), deadURL(t), "tok", Options{Nodes: []string{deadURL(t)}})
	require.ErrorIs(t, err, ErrUnreachable)
	require.Zero(t, CloseCode(err))
}

func TestDialStopsWhereEveryNodeWouldRefuse(t *testing.T) {
	t.Parallel()
	a := startNode(t, "a", "forbid")
	b := startNode(t, "b", "welcome")
	_, err := Dial(testCtx(t), a.URL(), "tok", Options{Nodes: []string{b.URL()}})
	require.Equal(t, CloseForbidden, CloseCode(err))
	require.Zero(t, b.joins.Load(), "a forbidden join must not be tried elsewhere")
}

func TestRedirectLoopIsBounded(t *testing.T) {
	t.Parallel()
	a := startNode(t, "a", "redirect")
	b := startNode(t, "b", "redirect")
	a.redirectTo.Store(b.URL())
	b.redirectTo.Store(a.URL())
	_, err := Dial(testCtx(t), a.URL(), "tok", Options{})
	require.ErrorIs(t, err, ErrTooManyRedirects)
	require.Equal(t, int32(maxRedirects+1), a.joins.Load()+b.joins.Load())
}

func TestReconnectAfterNodeDiesUsesWelcomeNodes(t *testing.T) {
	t.Parallel()
	b := startNode(t, "b", "welcome")
	c2 := startNode(t, "c", "welcome")
	b.nodes.Store([]string{b.URL(), c2.URL() + "/"})
	cl, err := Dial(testCtx(t), b.URL(), "tok", Options{})
	require.NoError(t, err)
	require.Equal(t, []string{b.URL(), c2.URL()}, cl.Nodes())

	b.kill()
	<-cl.Done()
	require.ErrorIs(t, cl.Err(), ErrClosed)
	nc, err := cl.Reconnect(testCtx(t))
	require.NoError(t, err)
	defer nc.Close()
	require.Equal(t, c2.URL(), nc.BaseURL())
	require.Equal(t, "c", nc.Welcome().Node)
}

func TestReconnectFollowsRedirectWhileJoined(t *testing.T) {
	t.Parallel()
	a := startNode(t, "a", "welcome")
	b := startNode(t, "b", "welcome")
	cl, err := Dial(testCtx(t), a.URL(), "tok", Options{})
	require.NoError(t, err)

	// The node moves its class: the next join is redirected, and so is
	// this connection (the message, then close 4307).
	a.behave.Store("redirect")
	a.redirectTo.Store(b.URL())
	a.kick <- Redirect{URL: b.URL(), Reason: RedirectCapacity}

	var got *Redirect
	for ev := range cl.Events() {
		if r, ok := ev.Data.(*Redirect); ok {
			got = r
		}
	}
	require.Equal(t, &Redirect{URL: b.URL(), Reason: RedirectCapacity}, got)
	require.Equal(t, CloseRedirect, cl.CloseCode())
	nc, err := cl.Reconnect(testCtx(t))
	require.NoError(t, err)
	defer nc.Close()
	require.Equal(t, b.URL(), nc.BaseURL())
	require.EqualValues(t, 1, a.joins.Load(), "the redirect target is tried first")
}

func TestReconnectWaitsForANode(t *testing.T) {
	t.Parallel()
	a := startNode(t, "a", "welcome")
	cl, err := Dial(testCtx(t), a.URL(), "tok", Options{})
	require.NoError(t, err)
	a.kill()
	<-cl.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	_, err = cl.Reconnect(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, ErrUnreachable)
}

func TestCandidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		base, first  string
		nodes, wants []string
	}{
		{"base only", "http://a/", "", nil, []string{"http://a"}},
		{"redirect first", "http://a", "http://b/", []string{"http://c"}, []string{"http://b", "http://a", "http://c"}},
		{"each once", "http://a", "", []string{"http://a/", " http://b ", "http://b", ""}, []string{"http://a", "http://b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.wants, candidates(tc.base, tc.first, tc.nodes))
		})
	}
}
