package signaling

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"lectern/auth"
	"lectern/cluster"
	"lectern/sfu"
)

// Lock order, outermost first. A goroutine holding one of these may take
// only those listed after it:
//
//	hub.mu -> room.mu
//
// WHIP and WHEP (session.go) add session.mu, taken before hub.mu and
// room.mu; sessionTable.mu is a leaf.
//
// Server.connsMu, tracker.mu, the bitrate sampler's mutex and the rate
// limiters' and flood cooldowns' mutexes (limits.go) are leaves: nothing
// else is taken while they are held. No sfu method (pion work,
// which may call back into this package) is ever called with a lock held:
// room methods return the peers to close and callers close them after
// unlocking.

// AuthMode says who may mint tokens.
type AuthMode string

// Auth modes.
const (
	// AuthOpen lets the lobby create classes and mint their links.
	AuthOpen AuthMode = "open"
	// AuthTokens accepts only tokens minted elsewhere with the secret.
	AuthTokens AuthMode = "tokens"
)

// DefaultInviteTTL is how long lobby links stay valid by default.
const DefaultInviteTTL = 12 * time.Hour

// Options are everything a Server needs; cmd/ and tests build them.
type Options struct {
	// Engine is the media plane. It may be nil only where nobody publishes
	// (tests of the control plane): publish then fails with `internal`.
	Engine   *sfu.Engine
	Signer   *auth.Signer
	AuthMode AuthMode
	Logger   zerolog.Logger
	// Registry receives the server's Prometheus collectors.
	Registry *prometheus.Registry
	// Web holds the pages (index.html, room.html, assets/…).
	Web fs.FS
	// Ready reports an external dependency's readiness (NATS); nil means ready.
	Ready func() error
	// InviteTTL is how long lobby links stay valid (default 12h).
	InviteTTL time.Duration
	// ICEServers are announced to WHIP and WHEP clients in Link headers
	// (RFC 9725 4.6); empty: none.
	ICEServers []webrtc.ICEServer
	// TURN mints each participant's TURN credentials, handed out in the
	// welcome message and in WHIP and WHEP Link headers; nil: no TURN.
	TURN ICESource
	// Recording configures recordings (docs/recording.md); zero: off.
	Recording RecordingOptions
	// Cluster is this node's part of a cluster of nodes (docs/scaling.md);
	// nil: a node on its own.
	Cluster *cluster.Node
	// MaxStudents is how many students this node takes before sending
	// new ones to other nodes of the cluster (0: no limit).
	MaxStudents int
	// Audit receives the audit events (audit.go); nil: NewAuditLog(Logger).
	Audit *AuditLog
	// MetricsClassLabels is how many of the largest classes get series
	// labelled by class in /metrics (0: none).
	MetricsClassLabels int
	// Limits bound what one client can multiply (limits.go); zero
	// fields take their defaults.
	Limits Limits
	// PublicURL is the base URL clients reach this node at; an https://
	// one marks the replay cookie Secure behind a TLS-terminating proxy.
	PublicURL string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For and
	// X-Forwarded-Proto are believed.
	TrustedProxies []netip.Prefix
}

// timings are the protocol's clocks (docs/protocol.md, "Transport");
// tests shorten them.
type timings struct {
	join  time.Duration // first message must be join within this
	read  time.Duration // after join, silence longer than this closes
	ping  time.Duration // the server pings this often
	ready time.Duration // a stream is announced this long after its first track
	body  time.Duration // a request body must arrive within this
}

func defaultTimings() timings {
	return timings{join: 10 * time.Second, read: 45 * time.Second, ping: 20 * time.Second, ready: 3 * time.Second,
		body: 10 * time.Second}
}

// Server serves one node's classes.
type Server struct {
	opts     Options
	tm       timings
	log      zerolog.Logger
	hub      *hub
	mux      *http.ServeMux
	upgrader websocket.Upgrader
	// wsWriteBufs are the websockets' write buffers, held while a message
	// is written.
	wsWriteBufs sync.Pool
	tasks       tracker
	rates       *bitrates
	closing     atomic.Bool
	draining    atomic.Bool // drain.go
	// consoleStreams counts the open operator console streams; stopped
	// closes at Shutdown, ending them (operator_stream.go).
	consoleStreams atomic.Int32
	stopped        chan struct{}
	sessions       sessionTable // WHIP and WHEP sessions
	rec            *recManager
	audit          *AuditLog
	quality        *quality
	cl             atomic.Pointer[clusterLink] // nil without a cluster

	connsMu sync.Mutex // leaf lock
	conns   map[*conn]struct{}

	joinInvite, joinIP *limiter  // /api/join, per invite and per address
	floods             cooldowns // participants closed with 4008
	check              *checker  // the connectivity check (check.go)
	chatDropped        atomic.Int64
}

// New builds a server and starts its metrics sampler; Shutdown stops it.
func New(opts Options) (*Server, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if opts.Audit == nil {
		opts.Audit = NewAuditLog(opts.Logger)
	}
	s := &Server{
		opts:    opts,
		tm:      defaultTimings(),
		log:     opts.Logger,
		conns:   map[*conn]struct{}{},
		rates:   newBitrates(),
		audit:   opts.Audit,
		stopped: make(chan struct{}),
		quality: newQuality(),
	}
	s.joinInvite, s.joinIP = opts.Limits.joinLimiters()
	s.check = newChecker(s, opts.Limits.CheckRateIP)
	s.hub = newHub(s)
	var err error
	if s.rec, err = newRecManager(s, opts.Recording); err != nil {
		return nil, fmt.Errorf("signaling: recordings: %w", err)
	}
	// A class's websockets are many and mostly quiet: each reads through
	// a 1 KB buffer (a larger message is read in several pieces), and
	// takes a write buffer from a shared pool only while it writes a
	// message, rather than keeping two 4 KB buffers of its own for life.
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  4096,
		WriteBufferPool:  &s.wsWriteBufs,
		CheckOrigin:      s.checkOrigin,
	}
	if err := s.registerMetrics(); err != nil {
		return nil, err
	}
	if opts.Engine != nil {
		opts.Engine.SetReceptionObserver(s.quality)
	}
	s.mux = s.routes()
	s.tasks.start(s.sampleBitrates)
	if opts.Cluster != nil {
		if err := s.JoinCluster(opts.Cluster); err != nil {
			return nil, err
		}
	}
	if s.rec.enabled() && opts.Recording.Retention > 0 {
		s.tasks.start(s.rec.sweepLoop)
	}
	return s, nil
}

// registerMetrics registers every collector of the server.
func (s *Server) registerMetrics() error {
	cs := []prometheus.Collector{newCollector(s), newPathCollector(s), s.rec.failures}
	cs = append(append(cs, s.quality.collectors...), s.check.collectors()...)
	for _, c := range cs {
		if err := s.opts.Registry.Register(c); err != nil {
			return fmt.Errorf("signaling: register metrics: %w", err)
		}
	}
	return nil
}

// fill checks the options and gives the unset ones their defaults.
func (o *Options) fill() error {
	if o.Signer == nil {
		return errors.New("signaling: Options.Signer is required")
	}
	switch o.AuthMode {
	case AuthOpen, AuthTokens:
	case "":
		o.AuthMode = AuthTokens
	default:
		return fmt.Errorf("signaling: unknown auth mode %q", o.AuthMode)
	}
	if o.InviteTTL <= 0 {
		o.InviteTTL = DefaultInviteTTL
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	o.Limits = o.Limits.withDefaults()
	return nil
}

// Handler is the HTTP handler for every route. A request with a body
// must have sent all of it within the body timeout, whether its handler
// reads it or refuses the request first (net/http then reads what is
// left before answering): a client trickling a body holds a connection
// and a goroutine no longer than that. Headers are bounded by the HTTP
// server's ReadHeaderTimeout (app/http.go).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.tm.body))
		}
		s.mux.ServeHTTP(w, r)
	})
}

func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", s.servePage("index.html"))
	m.HandleFunc("GET /room/{room}", s.servePage("room.html"))
	m.Handle("GET /assets/", s.assets())
	m.HandleFunc("POST /api/classes", s.createClass)
	m.HandleFunc("POST /api/join", s.exchangeInvite)
	m.HandleFunc("GET /ws", s.serveWS)
	s.checkRoutes(m)
	s.httpMediaRoutes(m)
	s.recordingRoutes(m)
	m.HandleFunc("GET /api/nodes", s.listNodes)
	m.HandleFunc("GET /api/rooms", s.listRooms)
	m.HandleFunc("DELETE /api/rooms/{room}", s.endClassHTTP)
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	m.HandleFunc("/api/drain", s.drainHTTP)
	m.HandleFunc("GET /operator", s.servePage("operator.html"))
	m.HandleFunc("GET /api/operator", s.consoleAPI)
	m.HandleFunc("GET /api/operator/stream", s.consoleStream)
	m.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{}))
	return m
}

// Shutdown stops taking joins, tells connected clients, closes their peers
// and waits for every goroutine of the server to end, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.closing.Swap(true) {
		return s.tasks.wait(ctx)
	}
	s.log.Info().Msg("signaling: shutting down")
	close(s.stopped)
	if l := s.link(); l != nil {
		l.shutdown()
	}
	s.hub.shutdown()
	s.rec.shutdown()
	s.check.closeProbes()
	for _, c := range s.connSnapshot() {
		c.close(ErrShuttingDown, true)
	}
	s.rates.stop()
	err := s.tasks.wait(ctx)
	if err != nil {
		// Clients that do not finish the closing handshake in time are
		// cut off so that no goroutine outlives the server.
		for _, c := range s.connSnapshot() {
			c.abort()
		}
		err = errors.Join(err, s.tasks.wait(context.Background()))
	}
	return err
}

func (s *Server) addConn(c *conn) {
	s.connsMu.Lock()
	s.conns[c] = struct{}{}
	s.connsMu.Unlock()
}

func (s *Server) removeConn(c *conn) {
	s.connsMu.Lock()
	delete(s.conns, c)
	s.connsMu.Unlock()
}

func (s *Server) connSnapshot() []*conn {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

func (s *Server) connCount() int {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	return len(s.conns)
}

// tracker counts the server's goroutines so that Shutdown can wait for
// them, and refuses new ones once the server is stopping.
type tracker struct {
	mu     sync.Mutex // leaf lock
	closed bool
	wg     sync.WaitGroup
}

// enter registers a goroutine that is already running (an HTTP handler);
// false once the server is stopping.
func (t *tracker) enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

func (t *tracker) exit() { t.wg.Done() }

// start runs f on a new tracked goroutine; false once the server is stopping.
func (t *tracker) start(f func()) bool {
	if !t.enter() {
		return false
	}
	go func() {
		defer t.exit()
		f()
	}()
	return true
}

// startLate runs f even while the server is stopping: it is for the
// goroutines a connection needs to finish (its writer).
func (t *tracker) startLate(f func()) {
	t.wg.Add(1)
	go func() {
		defer t.exit()
		f()
	}()
}

// wait closes the tracker and waits for its goroutines, or for ctx.
func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
