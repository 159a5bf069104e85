package signaling

// The connectivity check (/check, docs/protocol.md "Connectivity check"):
// endpoints a browser uses before it has joined anything, to learn
// whether the websocket, UDP, ICE-TCP and TURN reach this node. They need
// no class token, so each is bounded: one rate limit per client address
// over all of them, a cap on the probe peer connections and downloads of
// the whole node, and a short life for every probe. A probe only answers
// the browser's offer: its media engine checks no more candidates than any
// session's (sfu/candidates.go), and it is sent nothing but ICE and DTLS.
// TURN credentials, which would let the holder relay, are minted only for
// a signed token (a class link or invite).

import (
	"encoding/binary"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"lectern/auth"
	"lectern/sfu"
)

const (
	// maxCheckProbes is how many probe peer connections the node holds
	// at once, for every client together.
	maxCheckProbes = 32
	// checkProbeLife bounds a probe; one is closed sooner, checkProbeLinger
	// after it connects, once the browser has read its selected pair.
	checkProbeLife   = 20 * time.Second
	checkProbeLinger = 3 * time.Second
	// maxCheckDownloads is how many downloads the node serves at once.
	maxCheckDownloads = 8
	// maxCheckDownload and defCheckDownload are a download's size in bytes.
	maxCheckDownload = 8 << 20
	defCheckDownload = 4 << 20
	// checkDownloadTime bounds the time a download may take to send.
	checkDownloadTime = 20 * time.Second
	// maxCheckEcho is the largest websocket message the echo returns.
	maxCheckEcho = 256
	// checkEchoTime bounds the websocket check, open to close.
	checkEchoTime = 5 * time.Second
	// checkCredentialLife is the life of a check's TURN credentials.
	checkCredentialLife = 2 * time.Minute
	// maxCheckKbps bounds a reported download rate (10 Gbit/s).
	maxCheckKbps = 10_000_000
)

// checker holds the check endpoints' limits and metrics.
type checker struct {
	s             *Server
	perIP         *limiter
	probes        sync.Map // *sfu.Viewer -> struct{}: open probes, closed at Shutdown
	nprobe, ndown slots

	results  *prometheus.CounterVec // test, result
	verdicts *prometheus.CounterVec // verdict
	download prometheus.Histogram   // Mbit/s
}

// slots is a bounded count of things in use.
type slots struct {
	mu sync.Mutex // leaf
	n  int
}

// take counts one more unless max are in use.
func (c *slots) take(max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n >= max {
		return false
	}
	c.n++
	return true
}

func (c *slots) done() {
	c.mu.Lock()
	c.n--
	c.mu.Unlock()
}

func newChecker(s *Server, perMinute float64) *checker {
	return &checker{
		s:     s,
		perIP: newLimiter(perMinute/60, int(perMinute/2), maxLimiterKeys),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lectern_check_results_total",
			Help: "Connectivity check results reported by browsers (/check), by test " +
				"(websocket, udp, tcp, turn, camera, microphone) and result (ok, blocked, skipped).",
		}, []string{"test", "result"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lectern_check_reports_total",
			Help: "Connectivity check reports by the path media would take: udp, tcp, turn or none.",
		}, []string{"verdict"}),
		download: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lectern_check_download_mbps",
			Help:    "Download rates measured by connectivity checks, in Mbit/s.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 25, 50, 100},
		}),
	}
}

func (c *checker) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.results, c.verdicts, c.download}
}

// allow spends one of the client address's check requests.
func (c *checker) allow(r *http.Request) error {
	return allowOrRetry(c.perIP, addrKey(c.s.clientAddr(r)), ErrTooManyChecks)
}

// checkRoutes adds the page and its endpoints.
func (s *Server) checkRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /check", s.servePage("check.html"))
	m.HandleFunc("GET /api/check", s.checkConfig)
	m.HandleFunc("GET /api/check/ws", s.checkEcho)
	m.HandleFunc("POST /api/check/probe", s.checkProbe)
	m.HandleFunc("GET /api/check/download", s.checkDownload)
	m.HandleFunc("POST /api/check/report", s.checkReport)
}

type checkConfigResponse struct {
	TURN       bool            `json:"turn"`
	ICEServers []iceServerInfo `json:"ice_servers"`
}

// checkConfig: GET /api/check says whether the node runs TURN and, for a
// request with a signed token (any class link or invite, not a replay
// link), hands out ICE servers with TURN credentials of a fresh
// participant that live two minutes.
func (s *Server) checkConfig(w http.ResponseWriter, r *http.Request) {
	if err := s.check.allow(r); err != nil {
		writeError(w, err)
		return
	}
	resp := checkConfigResponse{TURN: s.opts.TURN != nil, ICEServers: []iceServerInfo{}}
	if r.Header.Get("Authorization") != "" {
		claims, err := s.bearerAny(r)
		if err != nil {
			writeError(w, err)
			return
		}
		claims.Expiry = time.Now().Add(checkCredentialLife).Unix()
		pid := sfu.ParticipantID("check-" + auth.NewParticipantID())
		resp.ICEServers = iceInfos(s.iceServers(pid, claims, requestHost(r)))
	}
	writeJSON(w, http.StatusOK, resp)
}

// checkEcho: GET /api/check/ws is a websocket that returns the first text
// message, of at most 256 bytes, and closes (1000); nothing within 5 s,
// or a larger message, closes it too (1008, 1009). The handler is the
// connection's one reader and writer, in turn.
func (s *Server) checkEcho(w http.ResponseWriter, r *http.Request) {
	if err := s.check.allow(r); err != nil {
		writeError(w, err)
		return
	}
	if s.closing.Load() || !s.tasks.enter() {
		writeError(w, ErrShuttingDown)
		return
	}
	defer s.tasks.exit()
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	defer ws.Close()
	deadline := time.Now().Add(checkEchoTime)
	_ = ws.SetReadDeadline(deadline)
	_ = ws.SetWriteDeadline(deadline)
	ws.SetReadLimit(maxCheckEcho)
	code, reason := websocket.CloseNormalClosure, ""
	typ, msg, err := ws.ReadMessage()
	switch {
	case err == websocket.ErrReadLimit:
		code, reason = websocket.CloseMessageTooBig, ErrTooBig.Error()
	case err != nil:
		code, reason = websocket.ClosePolicyViolation, "no message in time"
	case typ != websocket.TextMessage:
		code, reason = websocket.CloseUnsupportedData, "text messages only"
	default:
		if ws.WriteMessage(websocket.TextMessage, msg) != nil {
			return
		}
	}
	// After a read timeout the deadline has passed: the close frame gets
	// a second of its own.
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
}

// checkProbe: POST /api/check/probe answers a receive-only offer
// (application/sdp, as WHEP) with a peer connection that sends nothing,
// so the browser learns which of the node's candidates it reaches. 201
// with the answer; the probe closes when the browser closes it, 3 s
// after it connects, or after 20 s.
func (s *Server) checkProbe(w http.ResponseWriter, r *http.Request) {
	if err := s.check.allow(r); err != nil {
		writeMediaError(w, err)
		return
	}
	if s.opts.Engine == nil {
		writeMediaError(w, ErrNoEngine)
		return
	}
	body, err := s.readBody(w, r, ctypeSDP, ErrNotSDP, maxSDPLen)
	if err != nil {
		writeMediaError(w, err)
		return
	}
	if s.closing.Load() || !s.check.nprobe.take(maxCheckProbes) {
		writeMediaError(w, retryAfter(ErrTooManyChecks, checkProbeLife))
		return
	}
	answer, err := s.check.openProbe(body)
	if err != nil {
		s.check.nprobe.done()
		writeMediaError(w, mediaError(err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctypeSDP)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(answer))
}

// openProbe answers offer with a viewer that has no sources, and arranges
// its end.
func (c *checker) openProbe(offer string) (string, error) {
	p := &probe{c: c}
	v, answer, err := c.s.opts.Engine.NewViewer(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer},
		sfu.ViewerConfig{
			Logger:   c.s.log,
			StreamID: "check",
			// pion calls OnClose on its own goroutines; Close waits for them.
			OnClose: func() { go p.end() },
			OnPath:  func(sfu.Path) { time.AfterFunc(checkProbeLinger, p.end) },
		})
	if err != nil {
		return "", err
	}
	p.set(v)
	time.AfterFunc(checkProbeLife, p.end)
	return answer.SDP, nil
}

// probe is one probe peer connection; it gives its slot back once,
// whichever of its ends comes first.
type probe struct {
	c     *checker
	mu    sync.Mutex // leaf
	v     *sfu.Viewer
	ended bool
}

// set records the viewer, or closes it if the probe has already ended.
func (p *probe) set(v *sfu.Viewer) {
	p.mu.Lock()
	p.v = v
	ended := p.ended
	if !ended {
		p.c.probes.Store(v, struct{}{})
	}
	p.mu.Unlock()
	if ended {
		_ = v.Close()
	}
}

func (p *probe) end() {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return
	}
	p.ended = true
	v := p.v
	p.mu.Unlock()
	if v != nil {
		p.c.probes.Delete(v)
		_ = v.Close()
	}
	p.c.nprobe.done()
}

// closeProbes ends every open probe (at Shutdown).
func (c *checker) closeProbes() {
	c.probes.Range(func(k, _ any) bool {
		c.probes.Delete(k)
		_ = k.(*sfu.Viewer).Close()
		return true
	})
}

// checkDownload: GET /api/check/download?bytes=N sends N random bytes (1
// to 8 MiB, default 4 MiB), which no proxy can compress, so the page can
// time them.
func (s *Server) checkDownload(w http.ResponseWriter, r *http.Request) {
	if err := s.check.allow(r); err != nil {
		writeError(w, err)
		return
	}
	n, err := checkDownloadSize(r.URL.Query().Get("bytes"))
	if err != nil {
		writeError(w, err)
		return
	}
	if !s.check.ndown.take(maxCheckDownloads) {
		writeError(w, retryAfter(ErrTooManyChecks, time.Second))
		return
	}
	defer s.check.ndown.done()
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(checkDownloadTime))
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(n))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	writeRandom(w, n)
}

// checkDownloadSize reads ?bytes=: empty is the default size.
func checkDownloadSize(q string) (int, error) {
	if q == "" {
		return defCheckDownload, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > maxCheckDownload {
		return 0, badField("bytes", "must be a whole number from 1 to 8388608")
	}
	return n, nil
}

// writeRandom writes n pseudo-random bytes (ChaCha8, fast and
// incompressible; nothing secret), stopping at the first failed write.
func writeRandom(w http.ResponseWriter, n int) {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], rand.Uint64())
	binary.LittleEndian.PutUint64(seed[8:], rand.Uint64())
	src := rand.NewChaCha8(seed)
	buf := make([]byte, 32<<10)
	for n > 0 {
		b := buf[:min(n, len(buf))]
		_, _ = src.Read(b)
		if _, err := w.Write(b); err != nil {
			return
		}
		n -= len(b)
	}
}
