package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"lectern/app"
	"lectern/auth"
	"lectern/client"
	"lectern/config"
)

// Paths of the test media, relative to this package.
const (
	clipIVF = "../testdata/clip.ivf"
	clipOgg = "../testdata/clip.ogg"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// server is one Lectern node running in the test process.
type server struct {
	app    *app.App
	base   string
	signer *auth.Signer
}

// startServer runs a node on free ports of 127.0.0.1 with its own data
// directory, and stops it when the test ends.
func startServer(t *testing.T, authMode string) *server {
	t.Helper()
	return startServerWith(t, authMode, nil)
}

// startServerWith is startServer with edit applied to the configuration.
func startServerWith(t *testing.T, authMode string, edit func(*config.Config)) *server {
	t.Helper()
	return startServerLog(t, authMode, testLogger(t), edit)
}

// startServerLog is startServerWith with the node's logger given.
func startServerLog(t *testing.T, authMode string, log zerolog.Logger, edit func(*config.Config)) *server {
	t.Helper()
	cfg := config.Default()
	cfg.HTTP = "127.0.0.1:0"
	cfg.UDPPort = 0
	cfg.TCPPort = 0
	cfg.PublicIP = "127.0.0.1"
	cfg.Data = t.TempDir()
	cfg.Auth = authMode
	cfg.LogLevel = "warn"
	if edit != nil {
		edit(&cfg)
	}
	require.NoError(t, cfg.Validate())
	a, err := app.New(cfg, log)
	require.NoError(t, err)
	require.NoError(t, a.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
	})
	return &server{app: a, base: a.BaseURL(), signer: a.Signer()}
}

// testLogger writes the node's warnings to the test log, and nothing once
// the test has ended: t.Log after the end panics.
func testLogger(t *testing.T) zerolog.Logger {
	w := &gatedWriter{w: zerolog.NewTestWriter(t)}
	t.Cleanup(w.shut)
	return zerolog.New(zerolog.ConsoleWriter{Out: w, NoColor: true}).Level(zerolog.WarnLevel).
		With().Timestamp().Logger()
}

// clientLogger is the test log for clients: only errors, since pion warns
// about every packet still in flight when a peer connection closes.
func clientLogger(t *testing.T) zerolog.Logger {
	return testLogger(t).Level(zerolog.ErrorLevel)
}

type gatedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *gatedWriter) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// newRoom returns a fresh class name.
func newRoom() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "class-" + hex.EncodeToString(b)
}

// token mints a personal token for room.
func (s *server) token(t *testing.T, room string, role auth.Role, name string) string {
	t.Helper()
	tok, err := client.MintToken(s.signer, room, role, name, "")
	require.NoError(t, err)
	return tok
}

// dial joins with token; the client is closed when the test ends.
func (s *server) dial(t *testing.T, token string, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts.Logger = clientLogger(t)
	c, err := client.Dial(ctx, s.base, token, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// publishClip publishes the clip files given (either may be "") as a
// camera stream and starts playing them once the peer connection is up.
func publishClip(t *testing.T, c *client.Client, ivf, ogg string) (*client.Publisher, *client.Publication) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	media, err := client.NewPublisher(client.PublisherOptions{IVF: ivf, Ogg: ogg})
	require.NoError(t, err)
	pub, err := c.Publish(ctx, client.LabelCamera, media.Tracks())
	require.NoError(t, err)
	require.NoError(t, pub.WaitConnected(ctx))
	media.Start()
	t.Cleanup(media.Stop)
	return media, pub
}

// waitFor polls cond until it holds, and fails the test with cond's last
// explanation when timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, why)
		}
		<-tick.C
	}
}
