package app

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Single-port mode: the HTTP listener also carries ICE-TCP and TURN over
// TCP and TLS, so that one port (443) is all a firewall must let
// through. Each connection is told apart by its first bytes:
//
//   - TLS: a handshake record, 0x16 (RFC 8446 5.1); inside it, HTTP or
//     TURN as below;
//   - TURN over TCP: a STUN message (RFC 8489 5: first two bits 0, the
//     magic cookie 0x2112A442 at bytes 4 to 8);
//   - ICE-TCP: RFC 4571 framing, a 2-byte length and then a STUN message,
//     so the cookie sits at bytes 6 to 10 (RFC 6544 3);
//   - anything else is HTTP (methods are ASCII letters; the HTTP server
//     answers what is not a request).

// sniffLen is how many bytes tell the kinds apart.
const sniffLen = 10

// sniffTimeout bounds the wait for a new connection's first bytes, and
// a TLS handshake, as the HTTP server's header timeout does.
const sniffTimeout = 10 * time.Second

// connKind is what a connection carries.
type connKind int

const (
	kindHTTP connKind = iota
	kindTLS
	kindTURN
	kindICETCP
)

var stunCookie = []byte{0x21, 0x12, 0xA4, 0x42}

// classify tells a connection's kind from its first bytes (fewer than
// sniffLen when the client sent no more).
func classify(b []byte) connKind {
	switch {
	case len(b) > 0 && b[0] == 0x16:
		return kindTLS
	case len(b) >= 8 && b[0]&0xC0 == 0 && bytes.Equal(b[4:8], stunCookie):
		return kindTURN
	case len(b) >= 10 && b[2]&0xC0 == 0 && bytes.Equal(b[6:10], stunCookie):
		return kindICETCP
	}
	return kindHTTP
}

// portMux accepts the connections of the HTTP listener and hands each to
// the HTTP server, the media plane's ICE-TCP mux or the TURN server.
type portMux struct {
	ln   net.Listener
	tls  *tls.Config // nil: no TLS on this port
	log  zerolog.Logger
	http *chanListener
	ice  *chanListener
	turn atomic.Pointer[func(net.Conn) error] // nil until TURN runs

	mu      sync.Mutex
	closed  bool
	pending map[net.Conn]struct{} // being sniffed
	wg      sync.WaitGroup
}

func newPortMux(ln net.Listener, tc *tls.Config, log zerolog.Logger) *portMux {
	m := &portMux{ln: ln, tls: tc, log: log, pending: map[net.Conn]struct{}{},
		http: newChanListener(ln.Addr()), ice: newChanListener(ln.Addr())}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

// setTURN routes TURN connections to serve from now on.
func (m *portMux) setTURN(serve func(net.Conn) error) { m.turn.Store(&serve) }

func (m *portMux) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if !m.track(c) {
			_ = c.Close()
			return
		}
		m.wg.Add(1)
		go m.route(c)
	}
}

func (m *portMux) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.pending[c] = struct{}{}
	return true
}

func (m *portMux) untrack(c net.Conn) {
	m.mu.Lock()
	delete(m.pending, c)
	m.mu.Unlock()
}

// route sniffs c and hands it on; a connection that sends nothing in
// time, or fails its TLS handshake, is closed.
func (m *portMux) route(raw net.Conn) {
	defer m.wg.Done()
	defer m.untrack(raw)
	_ = raw.SetDeadline(time.Now().Add(sniffTimeout))
	c, kind, err := sniff(raw, "tcp")
	if err == nil && kind == kindTLS && m.tls != nil {
		tc := tls.Server(c, m.tls)
		if err = tc.Handshake(); err == nil {
			c, kind, err = sniff(tc, "tls")
			if kind != kindTURN {
				kind = kindHTTP // inside TLS: TURN (RFC 8656 3.1) or HTTPS
			}
		}
	}
	if err != nil {
		_ = raw.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	m.dispatch(c, kind)
}

func (m *portMux) dispatch(c *sniffedConn, kind connKind) {
	var err error
	switch kind {
	case kindTURN:
		if serve := m.turn.Load(); serve != nil {
			err = (*serve)(c)
		} else {
			err = errNoTURN
		}
	case kindICETCP:
		err = m.ice.push(c)
	default:
		err = m.http.push(c)
	}
	if err != nil {
		_ = c.Close()
	}
}

// close stops accepting, closes the connections still being sniffed and
// the HTTP and ICE-TCP sides' listeners, and waits for its goroutines.
func (m *portMux) close() error {
	m.mu.Lock()
	m.closed = true
	for c := range m.pending {
		_ = c.Close()
	}
	m.mu.Unlock()
	err := m.ln.Close()
	_ = m.http.Close()
	_ = m.ice.Close()
	m.wg.Wait()
	return err
}

// sniffedConn replays the bytes sniff read before the rest of the
// connection. Kind names the transport for the TURN server's reports.
type sniffedConn struct {
	net.Conn
	r    io.Reader
	kind string
}

// Read reads the sniffed bytes first.
func (c *sniffedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Kind is "tcp" or "tls".
func (c *sniffedConn) Kind() string { return c.kind }

// sniff reads up to sniffLen bytes of c and classifies them.
func sniff(c net.Conn, kind string) (*sniffedConn, connKind, error) {
	buf := make([]byte, sniffLen)
	n, err := io.ReadAtLeast(c, buf, 1)
	for err == nil && n < sniffLen && classify(buf[:n]) == kindHTTP && looksBinary(buf[:n]) {
		var k int
		k, err = c.Read(buf[n:])
		n += k
	}
	if err != nil && n == 0 {
		return nil, kindHTTP, err
	}
	return &sniffedConn{Conn: c, r: io.MultiReader(bytes.NewReader(buf[:n]), c), kind: kind}, classify(buf[:n]), nil
}

// looksBinary: the bytes so far could still begin a STUN message (first
// two bits 0), so more are needed to decide; an HTTP method letter or a
// TLS record needs no more.
func looksBinary(b []byte) bool { return b[0]&0xC0 == 0 }

var errNoTURN = errors.New("app: TURN is not running")

// chanListener is a net.Listener of connections pushed to it.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) error {
	select {
	case l.conns <- c:
		return nil
	case <-l.done:
		return net.ErrClosed
	}
}

// Accept waits for the next connection pushed.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close ends Accept and push.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the shared listener's address.
func (l *chanListener) Addr() net.Addr { return l.addr }
