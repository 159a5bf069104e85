package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

const (
	// readLimit bounds one server message. A welcome lists every
	// participant and the last 50 chat messages, far below this.
	readLimit = 1 << 20
	// readTimeout: the server pings every 20 s (docs/protocol.md), so a
	// silence of a minute means the connection is gone.
	readTimeout  = 60 * time.Second
	writeTimeout = 10 * time.Second
	// leaveTimeout is how long Close waits for the server's close after leave.
	leaveTimeout      = 3 * time.Second
	defaultSendBuffer = 256
	defaultEvents     = 1024
)

// Options tunes Dial. The zero value is usable.
type Options struct {
	// Logger receives the client's and pion's warnings.
	Logger zerolog.Logger
	// API builds the peer connections; nil builds one with NewAPI. A load
	// tool shares one API between many clients.
	API *webrtc.API
	// SendBuffer is the capacity of the outgoing queue (default 256).
	SendBuffer int
	// EventBuffer is the capacity of Events() (default 1024). When it is
	// full, events are dropped and counted (DroppedEvents): the reader
	// never blocks on a consumer that does not read.
	EventBuffer int
	// OnEvent, when set, is called for each event from the reader
	// goroutine, before the event is queued on Events(). It must not block.
	OnEvent func(Event)
	// OnPacket, when set, is called from a track's reader goroutine for
	// every received RTP packet. The packet is only valid during the call.
	OnPacket func(s *Subscription, kind webrtc.RTPCodecType, p *rtp.Packet)
	// NoSubscribe leaves server offers unanswered: a participant that only
	// talks on the websocket.
	NoSubscribe bool
	// Nodes are base URLs of other nodes of the same cluster, tried in
	// turn when the one given to Dial cannot be reached. Once joined, the
	// welcome's list of live nodes extends them for Reconnect.
	Nodes []string
	// ICETransportPolicy of the peer connections: webrtc.ICETransportPolicyRelay
	// uses only the welcome's TURN servers (zero: every candidate).
	ICETransportPolicy webrtc.ICETransportPolicy
}

// Client is one participant's connection to a class.
type Client struct {
	opts Options
	log  zerolog.Logger
	api  *webrtc.API
	conn *websocket.Conn

	sendq    chan []byte
	quit     chan struct{} // closed when the connection is going down
	done     chan struct{} // closed when everything is torn down
	welcomed chan struct{}
	events   chan Event

	rid        atomic.Uint64
	dropped    atomic.Uint64
	aborted    atomic.Bool
	closeOnce  sync.Once
	writerDone chan struct{}
	wg         sync.WaitGroup // background work: closing peer connections

	base  string // the node's base URL, set once before use
	token string // set once before use

	mu       sync.Mutex // guards everything below
	state    state
	nodes    []string  // from the last welcome: the cluster's live nodes
	redirect *Redirect // the server's redirect, if it sent one
	subs     map[string]*Subscription
	pubs     map[string]*Publication
	// pending publish requests, by request id, waiting for answer or error.
	pending  map[string]*Publication
	err      error
	tornDown bool
}

// Dial connects to the server at baseURL (http://host:port), joins with
// token and returns once the server has sent welcome. A server that closes
// instead (bad token, removed participant) gives a *CloseError.
//
// In a cluster, Dial follows a redirect to the node it names, and when
// baseURL cannot be reached it tries Options.Nodes in turn
// (docs/cluster.md). BaseURL tells which node the client joined.
func Dial(ctx context.Context, baseURL, token string, opts Options) (*Client, error) {
	if _, err := wsURL(baseURL); err != nil {
		return nil, err
	}
	if opts.API == nil {
		api, err := NewAPI(APIOptions{Logger: opts.Logger})
		if err != nil {
			return nil, err
		}
		opts.API = api
	}
	return dialNodes(ctx, candidates(baseURL, "", opts.Nodes), token, opts)
}

// dialOne connects to one node. A redirect before welcome comes back as a
// *RedirectError.
func dialOne(ctx context.Context, baseURL, token string, opts Options) (*Client, error) {
	u, err := wsURL(baseURL)
	if err != nil {
		return nil, err
	}
	// A Dialer of our own: the default one would honour proxy variables.
	d := websocket.Dialer{HandshakeTimeout: writeTimeout}
	conn, resp, err := d.DialContext(ctx, u, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUnreachable, u, err)
	}
	c := newClient(conn, opts.API, opts)
	c.base, c.token = normalizeBase(baseURL), token
	if err := c.send(TypeJoin, "", joinData{Token: token}); err != nil {
		c.Abort()
		return nil, err
	}
	select {
	case <-c.welcomed:
		return c, nil
	case <-c.done:
		if r := c.Redirected(); r != nil {
			return nil, &RedirectError{URL: r.URL, Reason: r.Reason, From: c.base}
		}
		return nil, c.Err()
	case <-ctx.Done():
		c.Abort()
		return nil, ctx.Err()
	}
}

func newClient(conn *websocket.Conn, api *webrtc.API, opts Options) *Client {
	if opts.SendBuffer <= 0 {
		opts.SendBuffer = defaultSendBuffer
	}
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = defaultEvents
	}
	c := &Client{
		opts: opts, log: opts.Logger, api: api, conn: conn,
		sendq:      make(chan []byte, opts.SendBuffer),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		welcomed:   make(chan struct{}),
		events:     make(chan Event, opts.EventBuffer),
		writerDone: make(chan struct{}),
		subs:       map[string]*Subscription{},
		pubs:       map[string]*Publication{},
		pending:    map[string]*Publication{},
		state:      newState(),
	}
	go c.writeLoop()
	go c.readLoop()
	return c
}

// wsURL turns http(s)://host into ws(s)://host/ws.
func wsURL(base string) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return "", fmt.Errorf("client: base url: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("client: base url %q: scheme must be http or https", base)
	}
	u.Path += "/ws"
	u.Fragment = ""
	return u.String(), nil
}

// Events delivers every server message, typed. It is closed when the
// client is torn down.
func (c *Client) Events() <-chan Event { return c.events }

// DroppedEvents counts events dropped because Events() was full.
func (c *Client) DroppedEvents() uint64 { return c.dropped.Load() }

// Done is closed once the connection and every peer connection are closed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended: a *CloseError when the server closed
// it, ErrClosed after Abort, nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// CloseCode is the server's close code, 0 while connected or when the
// connection ended without a close frame.
func (c *Client) CloseCode() int { return CloseCode(c.Err()) }

// Close leaves the class (`leave`), waits briefly for the server to close
// the websocket, then closes every peer connection. It returns once all
// of the client's goroutines have ended.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if c.send(TypeLeave, c.newRID(TypeLeave), nil) == nil {
			t := time.NewTimer(leaveTimeout)
			defer t.Stop()
			select {
			case <-c.done:
				return
			case <-t.C:
			}
		}
		c.aborted.Store(true)
		_ = c.conn.Close()
	})
	<-c.done
	return nil
}

// Abort drops the connection without leaving, like a client whose network
// vanished, and waits for the teardown.
func (c *Client) Abort() {
	c.closeOnce.Do(func() {
		c.aborted.Store(true)
		_ = c.conn.Close()
	})
	<-c.done
}

// Send sends any message; tests use it to send what the typed methods
// would not. rid may be empty.
func (c *Client) Send(typ, rid string, data any) error {
	return c.send(typ, rid, data)
}

func (c *Client) send(typ, rid string, data any) error {
	env := struct {
		Type string `json:"type"`
		RID  string `json:"rid,omitempty"`
		Data any    `json:"data,omitempty"`
	}{typ, rid, data}
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("client: encode %s: %w", typ, err)
	}
	select {
	case <-c.quit:
		return ErrClosed
	default:
	}
	select {
	case c.sendq <- b:
		return nil
	default:
		return ErrSendQueueFull
	}
}

// newRID returns a request id that starts with the request type, so an
// error reply names the request it answers.
func (c *Client) newRID(typ string) string {
	return typ + "-" + strconv.FormatUint(c.rid.Add(1), 10)
}

func (c *Client) writeLoop() {
	defer close(c.writerDone)
	for {
		select {
		case b := <-c.sendq:
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				// The reader sees the closed socket and tears down.
				_ = c.conn.Close()
				return
			}
		case <-c.quit:
			return
		}
	}
}

func (c *Client) readLoop() {
	defer c.teardown()
	c.conn.SetReadLimit(readLimit)
	_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	c.conn.SetPingHandler(c.onPing)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.setErr(err)
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
		var env envelope
		if err := json.Unmarshal(data, &env); err != nil {
			c.log.Warn().Err(err).Msg("client: undecodable server message")
			continue
		}
		ev, err := decodeEvent(env)
		if err != nil {
			c.log.Warn().Err(err).Str("type", env.Type).Msg("client: bad payload")
			continue
		}
		c.handle(ev)
		c.emit(ev)
	}
}

// onPing answers like gorilla's default handler and extends the deadline.
func (c *Client) onPing(data string) error {
	_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	err := c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeTimeout))
	var ne net.Error
	if err == nil || errors.Is(err, websocket.ErrCloseSent) || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return err
}

func (c *Client) setErr(err error) {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		err = &CloseError{Code: ce.Code, Text: ce.Text}
	case c.aborted.Load():
		err = ErrClosed
	default:
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

func (c *Client) emit(ev Event) {
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(ev)
	}
	select {
	case c.events <- ev:
	default:
		c.dropped.Add(1)
	}
}

// teardown runs once, in the reader goroutine, when the websocket is gone.
func (c *Client) teardown() {
	close(c.quit)
	_ = c.conn.Close()
	<-c.writerDone
	c.mu.Lock()
	c.tornDown = true
	subs, pubs := c.subs, c.pubs
	c.subs, c.pubs = map[string]*Subscription{}, map[string]*Publication{}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); s.close() }()
	}
	for _, p := range pubs {
		wg.Add(1)
		go func() { defer wg.Done(); p.closePC() }()
	}
	wg.Wait()
	c.wg.Wait()
	close(c.events)
	close(c.done)
}

// background runs f in a goroutine that teardown waits for; after the
// teardown has started it runs f inline instead.
func (c *Client) background(f func()) {
	c.mu.Lock()
	if c.tornDown {
		c.mu.Unlock()
		f()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		f()
	}()
}
