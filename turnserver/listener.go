package turnserver

import (
	"net"
	"sync"
)

// connListener is a net.Listener whose connections are handed to it
// (ServeConn) rather than accepted from a socket, so that pion's server
// serves connections the node's HTTP listener demultiplexed.
type connListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnListener() *connListener {
	return &connListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) error {
	select {
	case l.conns <- c:
		return nil
	case <-l.done:
		return ErrClosed
	}
}

// Accept waits for the next handed connection.
func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and ServeConn.
func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is a placeholder: the connections come from elsewhere.
func (l *connListener) Addr() net.Addr { return &net.TCPAddr{} }

// trackedListener remembers the connections it accepted, so that Close
// ends them too: pion's server only closes its listeners, and a client's
// connection would otherwise stay served until the client hangs up.
type trackedListener struct {
	net.Listener
	kind   string    // "tcp" or "tls": what its connections carry TURN over
	kinds  *sync.Map // client address -> kind, while connected
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func track(ln net.Listener, kind string, kinds *sync.Map) *trackedListener {
	return &trackedListener{Listener: ln, kind: kind, kinds: kinds, conns: map[net.Conn]struct{}{}}
}

// maxStreamConns bounds the TURN connections over TCP or TLS one listener
// serves at once: each costs a goroutine and buffers for as long as its
// client keeps it open.
const maxStreamConns = 2048

// Accept accepts and records a connection; over the bound, connections
// are closed at once.
func (t *trackedListener) Accept() (net.Conn, error) {
	for {
		c, err := t.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, err := t.add(c)
		if tc != nil || err != nil {
			return tc, err
		}
	}
}

// add records c; nil and no error when there are too many already.
func (t *trackedListener) add(c net.Conn) (net.Conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	if len(t.conns) >= maxStreamConns {
		_ = c.Close()
		return nil, nil
	}
	tc := &trackedConn{Conn: c, owner: t}
	t.conns[tc] = struct{}{}
	kind := t.kind
	if k, ok := c.(interface{ Kind() string }); ok {
		kind = k.Kind()
	}
	t.kinds.Store(c.RemoteAddr().String(), kind)
	return tc, nil
}

// Close closes the listener and every connection it accepted.
func (t *trackedListener) Close() error {
	err := t.Listener.Close()
	t.mu.Lock()
	t.closed = true
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	for c := range conns {
		_ = c.(*trackedConn).Conn.Close()
	}
	return err
}

func (t *trackedListener) forget(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	t.kinds.Delete(c.RemoteAddr().String())
}

// trackedConn leaves its listener's set when closed.
type trackedConn struct {
	net.Conn
	owner *trackedListener
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	c.owner.forget(c)
	return c.Conn.Close()
}
