package signaling

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"lectern/auth"
	"lectern/sfu"
)

// Websocket limits (docs/protocol.md, "Transport").
const (
	maxMessageBytes = 64 << 10
	sendQueueLen    = 256
	writeTimeout    = 10 * time.Second
	// closeGrace is how long a closing connection waits for the client's
	// close frame (RFC 6455 section 7.1.1: the server closes TCP after it).
	closeGrace   = time.Second
	rateLimit    = 50 // messages per second
	maxCloseText = 123
)

// errGone: the client went away without a close frame, or a write failed.
var errGone = errors.New("connection lost")

// conn is one websocket client. One goroutine started by serveWS is its
// only reader; writeLoop is its only writer. Everything else talks to it
// through its send queue, which never blocks.
type conn struct {
	s   *Server
	ws  *websocket.Conn
	log zerolog.Logger

	send       sendQueue
	quit       chan struct{} // closed by close
	readerDone chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once
	closed     atomic.Bool
	closeErr   error // set before quit is closed
	drain      bool  // likewise: send what is queued before the close frame
	leaveOnce  sync.Once

	// host is the name the client reached the node by (TURN URLs).
	host string
	// Set once by the reader when it joins, before the conn is shared.
	claims auth.Claims
	pid    sfu.ParticipantID
	room   *room
	rate   rateWindow
	// browser is the latest stats report of the page (browser_stats.go).
	browser atomic.Pointer[browserStats]
	// expiry closes the connection when the token expires (set at join).
	expiry *time.Timer

	// Guarded by room.mu.
	pubs map[string]*stream             // by the client's own stream id
	subs map[sfu.StreamID]*subscription // by the server's stream id
	left bool
}

func newConn(s *Server, ws *websocket.Conn) *conn {
	return newConnQueue(s, ws, sendQueueLen)
}

// newStandIn makes a conn that has no websocket: the participant of a WHIP
// or WHEP session, or the local stand-in for a relayed stream's publisher.
// It is closed from the start, so enqueue drops whatever it is sent.
func newStandIn(s *Server) *conn {
	c := newConnQueue(s, nil, 0)
	c.closed.Store(true)
	return c
}

func newConnQueue(s *Server, ws *websocket.Conn, queueLen int) *conn {
	return &conn{
		s: s, ws: ws, log: s.log,
		send:       sendQueue{max: queueLen, ready: make(chan struct{}, 1)},
		quit:       make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
		pubs:       map[string]*stream{},
		subs:       map[sfu.StreamID]*subscription{},
	}
}

// sameOrigin accepts browsers on the server's own host and clients that
// send no Origin at all (non-browser clients cannot be tricked into
// cross-site requests; RFC 6455 section 10.2).
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// serveWS upgrades the request and hands the connection to a reader
// goroutine of its own, tracked from the handler on. The handler returns
// at once: net/http keeps a hijacked connection's request, its 4 KB
// response buffer and the handler's goroutine (and stack) for as long as
// the handler runs; the reader goes on with the server's read buffer.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.closing.Load() || !s.tasks.enter() {
		writeError(w, ErrShuttingDown)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.tasks.exit()
		return // the upgrader has answered with an HTTP error
	}
	c := newConn(s, ws)
	c.host = requestHost(r)
	s.addConn(c)
	s.tasks.startLate(c.writeLoop)
	if s.closing.Load() {
		c.close(ErrShuttingDown, false)
	}
	go func() {
		defer s.tasks.exit() // the task entered above
		defer s.removeConn(c)
		c.readLoop()
		close(c.readerDone)
		c.leave()
		<-c.writerDone
		_ = ws.Close()
	}()
}

// enqueue queues one encoded message. A client whose queue is full is too
// slow to keep up: it is closed rather than allowed to hold up its class.
func (c *conn) enqueue(b []byte) {
	if b == nil || c.closed.Load() {
		return
	}
	if !c.send.push(b) {
		c.close(ErrSlowConsumer, false)
	}
}

// enqueueDroppable queues a message that may be lost (chat): it takes
// only the first half of the queue and is dropped beyond, so a client
// that cannot keep up with a busy chat still gets its control messages
// and is never closed because of chat.
func (c *conn) enqueueDroppable(b []byte) {
	if b == nil || c.closed.Load() {
		return
	}
	if !c.send.pushBelow(b, c.send.max/2) {
		c.s.chatDropped.Add(1)
	}
}

func (c *conn) sendMsg(typ, rid string, data any) { c.enqueue(encode(typ, rid, data)) }

func (c *conn) replyError(rid string, err error) {
	c.log.Debug().Err(err).Str("rid", rid).Msg("signaling: request failed")
	c.sendMsg(typeError, rid, errorData{Code: protocolCode(err), Message: clientMessage(err)})
}

// close starts closing the connection with the code err maps to. With
// drain, the messages already queued are sent before the close frame.
func (c *conn) close(err error, drain bool) {
	c.closeOnce.Do(func() {
		c.closeErr, c.drain = err, drain
		c.closed.Store(true)
		close(c.quit)
	})
}

// abort cuts the TCP connection at once.
func (c *conn) abort() { _ = c.ws.NetConn().Close() }

// leave takes the connection out of its class, once.
func (c *conn) leave() {
	c.leaveOnce.Do(func() {
		if c.expiry != nil {
			c.expiry.Stop()
		}
		if c.room != nil {
			c.room.leave(c)
		}
	})
}

func (c *conn) readLoop() {
	c.ws.SetReadLimit(maxMessageBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(c.s.tm.join))
	c.ws.SetPongHandler(func(string) error {
		c.extendDeadline()
		return nil
	})
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			c.readFailed(err)
			return
		}
		if c.closed.Load() {
			continue // closing: discard until the client's close frame
		}
		if !c.rate.allow(time.Now()) {
			c.close(ErrRateLimited, false)
			c.s.floods.add(c.pid, c.s.opts.Limits.FloodCooldown)
		} else if mt != websocket.TextMessage {
			c.replyError("", fmt.Errorf("%w: messages are JSON text", ErrBadRequest))
		} else {
			c.extendDeadline()
			c.handleApart(data)
		}
		if c.closed.Load() {
			c.leave()
		}
	}
}

// handleApart runs handle on a goroutine of its own and waits for it, so
// messages are still handled one at a time and in order. Handling a
// subscribe or publish goes deep into pion (offers, ICE gathering) and
// grows the goroutine's stack to tens of KB, and the runtime halves a
// stack only at a collection and only while under a quarter of it is in
// use: the reader, which waits for the next message for most of a
// lesson, would keep much of it for every student. A goroutine per
// message costs about a microsecond; clients send a few a minute.
func (c *conn) handleApart(data []byte) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.handle(data)
	}()
	<-done
}

// extendDeadline: the join deadline is fixed; after join every message
// and pong gives the client readTimeout more.
func (c *conn) extendDeadline() {
	if c.room != nil {
		_ = c.ws.SetReadDeadline(time.Now().Add(c.s.tm.read))
	}
}

func (c *conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		c.close(ErrTooBig, false)
		// gorilla has sent close 1009; read the rest of the message away
		// so that closing the socket does not reset it (RFC 9293 section
		// 3.6) and lose that close frame.
		nc := c.ws.NetConn()
		_ = nc.SetReadDeadline(time.Now().Add(closeGrace))
		_, _ = io.Copy(io.Discard, nc)
	case errors.As(err, &ne) && ne.Timeout() && c.room == nil:
		c.close(fmt.Errorf("%w: no join within %s", ErrUnauthorized, c.s.tm.join), false)
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway):
		c.close(ErrLeft, false)
	default:
		c.close(errGone, false)
	}
}

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	ping := time.NewTicker(c.s.tm.ping)
	defer ping.Stop()
	for {
		select {
		case <-c.send.ready:
			for _, b := range c.send.take() {
				if err := c.write(b); err != nil {
					c.close(errGone, false)
					break
				}
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				c.close(errGone, false)
			}
		case <-c.quit:
			c.finish()
			return
		}
	}
}

func (c *conn) write(b []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// finish sends what must still go out, the close frame, then waits a
// moment for the client's close frame before the socket is closed.
func (c *conn) finish() {
	if c.drain {
		c.flush()
	}
	code, text := closeCode(c.closeErr), ""
	if c.closeErr != nil {
		text = clientMessage(c.closeErr)
	}
	if len(text) > maxCloseText {
		text = text[:maxCloseText]
	}
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text),
		time.Now().Add(closeGrace))
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-c.readerDone:
	case <-t.C:
	}
	_ = c.ws.Close()
}

func (c *conn) flush() {
	for _, b := range c.send.take() {
		if c.write(b) != nil {
			return
		}
	}
}

// sendQueue is a connection's outgoing messages, at most max of them. It
// holds a slice only while messages wait, so the many quiet connections
// of a class keep no buffer (a channel of 256 would be 6 KB each).
type sendQueue struct {
	max   int
	ready chan struct{} // one slot: messages wait for the writer

	mu   sync.Mutex // leaf
	msgs [][]byte
}

// push queues b, or reports false when max messages already wait.
func (q *sendQueue) push(b []byte) bool { return q.pushBelow(b, q.max) }

// pushBelow queues b, or reports false when limit messages already wait.
func (q *sendQueue) pushBelow(b []byte, limit int) bool {
	q.mu.Lock()
	if len(q.msgs) >= limit {
		q.mu.Unlock()
		return false
	}
	q.msgs = append(q.msgs, b)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default: // the writer is already told
	}
	return true
}

// take returns every waiting message, oldest first, and empties the queue.
func (q *sendQueue) take() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	msgs := q.msgs
	q.msgs = nil
	return msgs
}

// handle decodes and runs one client message.
func (c *conn) handle(raw []byte) {
	req, err := decodeRequest(raw)
	if err != nil {
		c.replyError(req.RID, err)
		return
	}
	if c.room != nil && !c.claims.ValidAt(time.Now()) {
		c.close(ErrTokenExpired, false)
		return
	}
	if c.room == nil {
		if req.Type != typeJoin {
			c.replyError(req.RID, fmt.Errorf("%w: join first", ErrForbidden))
			return
		}
		c.join(req.Data.(*joinData))
		return
	}
	if err := c.dispatch(req); err != nil {
		c.replyError(req.RID, err)
	}
}

func (c *conn) dispatch(req request) error {
	r := c.room
	switch d := req.Data.(type) {
	case *joinData:
		return fmt.Errorf("%w: already joined", ErrConflict)
	case *publishData:
		return c.publish(req.RID, d)
	case *streamRef:
		if req.Type == typeSubscribe {
			return r.resubscribe(c, d.Stream)
		}
		return r.unpublish(c, d.Stream)
	case *answerData:
		return c.answer(d)
	case *iceData:
		return c.addCandidate(d)
	case *chatData:
		return r.postChat(c, d.Text)
	case *handData:
		return r.setHand(c, *d.Raised)
	case *participantRef:
		return r.moderate(c, req.Type, sfu.ParticipantID(d.ID))
	case *recordData:
		return c.record(*d.Active)
	case *statsData:
		c.reportStats(d, time.Now())
		return nil
	case *noData: // leave
		c.leave()
		c.close(ErrLeft, true)
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnknownType, req.Type)
}

// join checks the token and enters the class, or closes the connection.
func (c *conn) join(d *joinData) {
	start := time.Now()
	claims, err := c.s.opts.Signer.Verify(d.Token)
	if err != nil {
		c.close(err, false)
		return
	}
	if claims.Invite {
		c.close(fmt.Errorf("%w: exchange the invite at /api/join first", ErrUnauthorized), false)
		return
	}
	if claims.Replay() {
		c.close(fmt.Errorf("%w: a replay link does not join a class", ErrForbidden), false)
		return
	}
	room := d.Room
	if room == "" {
		room = claims.Room
	}
	if room == auth.AllRooms || !validRoom(room) {
		c.close(fmt.Errorf("%w: name the class to join", ErrForbidden), false)
		return
	}
	if !claims.CoversRoom(room) {
		c.close(ErrOtherRoom, false)
		return
	}
	c.claims, c.pid = claims, sfu.ParticipantID(claims.Participant)
	c.log = c.s.log.With().Str("room", room).Str("participant", claims.Participant).
		Str("role", string(claims.Role)).Logger()
	var re *redirectError
	if errors.As(c.s.route(claims.Role, sfu.RoomID(room)), &re) {
		c.redirectWS(re)
		c.s.quality.join.Observe(time.Since(start).Seconds())
		return
	}
	if err := c.s.hub.join(c, sfu.RoomID(room)); err != nil {
		c.log.Info().Err(err).Msg("signaling: join refused")
		c.close(err, false)
		return
	}
	c.s.quality.join.Observe(time.Since(start).Seconds())
	_ = c.ws.SetReadDeadline(time.Now().Add(c.s.tm.read))
	// The token's life bounds the connection's (closed with 4001).
	c.expiry = time.AfterFunc(time.Until(time.Unix(claims.Expiry, 0)), func() { c.close(ErrTokenExpired, false) })
	c.log.Info().Msg("signaling: joined")
}

// rateWindow counts messages per one-second window.
type rateWindow struct {
	start time.Time
	n     int
}

func (w *rateWindow) allow(now time.Time) bool {
	if now.Sub(w.start) >= time.Second {
		w.start, w.n = now, 0
	}
	w.n++
	return w.n <= rateLimit
}
