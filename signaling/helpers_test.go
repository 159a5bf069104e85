package signaling

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/sfu"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

const waitFor = 5 * time.Second

type testEnv struct {
	t      *testing.T
	srv    *Server
	http   *httptest.Server
	signer *auth.Signer
	engine *sfu.Engine
	ws     string
}

type envOpts struct {
	mode   AuthMode
	engine bool
	ready  func() error
	tm     func(*timings)
	limits Limits
}

func testWeb() fstest.MapFS {
	return fstest.MapFS{
		"index.html":     {Data: []byte("<!doctype html><title>lobby</title>")},
		"room.html":      {Data: []byte("<!doctype html><title>class</title>")},
		"assets/app.js":  {Data: []byte("console.log('lectern')")},
		"assets/app.css": {Data: []byte("body{margin:0}")},
	}
}

// newEnv starts a server on 127.0.0.1, port 0; it is shut down when the
// test ends.
func newEnv(t *testing.T, o envOpts) *testEnv {
	t.Helper()
	signer, err := auth.NewSigner([]byte(testSecret))
	require.NoError(t, err)
	if o.mode == "" {
		o.mode = AuthOpen
	}
	env := &testEnv{t: t, signer: signer}
	if o.engine {
		e, err := sfu.NewEngine(sfu.Config{TCPPort: -1, PublicIP: "127.0.0.1", Logger: zerolog.Nop()})
		require.NoError(t, err)
		env.engine = e
	}
	srv, err := New(Options{
		Engine: env.engine, Signer: signer, AuthMode: o.mode, Logger: zerolog.Nop(),
		Registry: prometheus.NewRegistry(), Web: testWeb(), Ready: o.ready, Limits: o.limits,
	})
	require.NoError(t, err)
	if o.tm != nil {
		o.tm(&srv.tm)
	}
	env.srv = srv
	env.start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		env.http.Close()
		if env.engine != nil {
			_ = env.engine.Close()
		}
	})
	return env
}

// newEnvFor serves srv; the caller shuts it down.
func newEnvFor(t *testing.T, srv *Server, signer *auth.Signer) *testEnv {
	env := &testEnv{t: t, srv: srv, signer: signer}
	env.start()
	return env
}

func (e *testEnv) start() {
	e.http = httptest.NewServer(e.srv.Handler())
	e.ws = "ws" + strings.TrimPrefix(e.http.URL, "http") + "/ws"
}

func (e *testEnv) token(room string, role auth.Role, pid, name string) string {
	e.t.Helper()
	tok, err := e.signer.Mint(auth.Claims{Room: room, Role: role, Participant: pid, Name: name}, time.Hour)
	require.NoError(e.t, err)
	return tok
}

// rawToken signs arbitrary claims, including ones Mint refuses (expired).
func rawToken(secret string, claims any) string {
	enc := base64.RawURLEncoding
	body, _ := json.Marshal(claims)
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(body)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(m.Sum(nil))
}

// wsClient is a bare protocol client: every message it receives is kept.
type wsClient struct {
	t    *testing.T
	ws   *websocket.Conn
	done chan struct{}

	mu     sync.Mutex
	msgs   []envelope
	code   int    // close code received, 0 until then; -1 without a close frame
	reason string // the close frame's reason text

	gate   sync.Mutex // held by pause: the client stops reading
	paused bool       // guarded by mu
}

// pause stops reading (after at most the message being read) until
// resume, or the end of the test.
func (c *wsClient) pause() {
	c.gate.Lock()
	c.mu.Lock()
	c.paused = true
	c.mu.Unlock()
	c.t.Cleanup(c.resume)
}

// resume reads on; once paused, it may be called more than once.
func (c *wsClient) resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused {
		c.paused = false
		c.gate.Unlock()
	}
}

func (e *testEnv) dial() *wsClient { return e.dialWith(websocket.DefaultDialer) }

func (e *testEnv) dialWith(d *websocket.Dialer) *wsClient {
	e.t.Helper()
	ws, resp, err := d.Dial(e.ws, nil)
	require.NoError(e.t, err)
	_ = resp.Body.Close()
	c := &wsClient{t: e.t, ws: ws, done: make(chan struct{})}
	go c.readLoop()
	e.t.Cleanup(func() {
		_ = ws.Close()
		<-c.done
	})
	return c
}

func (c *wsClient) readLoop() {
	defer close(c.done)
	for {
		c.gate.Lock()
		//lint:ignore SA2001 an empty critical section: wait while paused
		c.gate.Unlock()
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			c.mu.Lock()
			if errors.As(err, &ce) {
				c.code, c.reason = ce.Code, ce.Text
			} else {
				c.code = -1
			}
			c.mu.Unlock()
			return
		}
		var env envelope
		if json.Unmarshal(data, &env) == nil {
			c.mu.Lock()
			c.msgs = append(c.msgs, env)
			c.mu.Unlock()
		}
	}
}

// join dials and joins with token, and waits for the welcome.
func (e *testEnv) join(token string) (*wsClient, welcomeData) {
	e.t.Helper()
	c := e.dial()
	c.send(typeJoin, "", joinData{Token: token})
	var w welcomeData
	c.decode(c.waitType(typeWelcome), &w)
	return c, w
}

func (c *wsClient) send(typ, rid string, data any) {
	c.t.Helper()
	raw, err := json.Marshal(data)
	require.NoError(c.t, err)
	b, err := json.Marshal(envelope{Type: typ, RID: rid, Data: raw})
	require.NoError(c.t, err)
	c.sendRaw(b)
}

func (c *wsClient) sendRaw(b []byte) {
	c.t.Helper()
	_ = c.ws.SetWriteDeadline(time.Now().Add(waitFor))
	require.NoError(c.t, c.ws.WriteMessage(websocket.TextMessage, b))
}

// wait returns the first received message matching ok, waiting for it.
func (c *wsClient) wait(what string, ok func(envelope) bool) envelope {
	c.t.Helper()
	var found envelope
	require.Eventually(c.t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, m := range c.msgs {
			if ok(m) {
				found = m
				return true
			}
		}
		return false
	}, waitFor, 5*time.Millisecond, "waiting for %s", what)
	return found
}

func (c *wsClient) waitType(typ string) envelope {
	c.t.Helper()
	return c.wait(typ, func(m envelope) bool { return m.Type == typ })
}

// waitError waits for the error reply to the request rid.
func (c *wsClient) waitError(rid string) errorData {
	c.t.Helper()
	var e errorData
	c.decode(c.wait("error "+rid, func(m envelope) bool { return m.Type == typeError && m.RID == rid }), &e)
	return e
}

func (c *wsClient) count(typ string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if m.Type == typ {
			n++
		}
	}
	return n
}

func (c *wsClient) decode(m envelope, v any) {
	c.t.Helper()
	require.NoError(c.t, json.Unmarshal(m.Data, v))
}

// closeCode waits for the connection to end and returns the close code.
func (c *wsClient) closeCode() int {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(waitFor):
		c.t.Fatalf("connection still open")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code
}

func (c *wsClient) isOpen() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// httpDo sends a request with a JSON body and returns status and body.
func (e *testEnv) httpDo(method, path, ctype, body string) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	require.NoError(e.t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, resp.Header, buf.Bytes()
}

func statsBytes(in, out uint64) sfu.Stats { return sfu.Stats{BytesIn: in, BytesOut: out} }
