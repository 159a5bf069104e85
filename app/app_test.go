package app

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"lectern/auth"
	"lectern/config"
)

// TestMain checks, after every test has shut its App down, that no
// goroutine is left: not from NATS (server or client), pion, HTTP or
// signaling. Tests run in parallel, so the check is made once at the end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testConfig is a node on free ports that offers only 127.0.0.1 to ICE.
func testConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.HTTP = "127.0.0.1:0"
	cfg.UDPPort, cfg.TCPPort = 0, 0
	cfg.PublicIP = "127.0.0.1"
	cfg.Data = filepath.Join(t.TempDir(), "data")
	cfg.LogFormat = config.LogJSON
	return cfg
}

// syncBuffer collects log lines written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startApp starts an App on cfg and shuts it down when the test ends.
func startApp(t *testing.T, cfg config.Config, log zerolog.Logger) *App {
	t.Helper()
	a, err := New(cfg, log)
	require.NoError(t, err)
	require.NoError(t, a.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
	})
	return a
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestAppServesAndShutsDown(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	a, err := New(cfg, zerolog.New(io.Discard))
	require.NoError(t, err)
	require.NoError(t, a.Start())

	code, _ := get(t, a.BaseURL()+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool {
		code, _ := get(t, a.BaseURL()+"/readyz")
		return code == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond)
	code, body := get(t, a.BaseURL()+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "go_goroutines", "the Go collector is registered")
	require.Contains(t, body, "process_open_fds", "the process collector is registered")

	require.True(t, a.NATS().IsConnected())
	require.NoError(t, a.ready())
	require.NotNil(t, a.Engine().UDPAddr())
	require.DirExists(t, filepath.Join(cfg.Data, "nats"), "JetStream keeps its store under the data directory")

	st, err := os.Stat(filepath.Join(cfg.Data, "secret"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, a.Shutdown(ctx))
	require.ErrorIs(t, a.ready(), errStopping, "readiness is off once shutdown begins")
	require.False(t, a.NATS().IsConnected())
	_, err = net.DialTimeout("tcp", a.Addr().String(), time.Second)
	require.Error(t, err, "the HTTP port is closed")

	require.NoError(t, a.Shutdown(ctx), "Shutdown is idempotent")
	require.ErrorIs(t, a.Start(), ErrClosed)
}

func TestNATSRoundTrip(t *testing.T) {
	t.Parallel()
	a := startApp(t, testConfig(t), zerolog.New(io.Discard))
	sub, err := a.NATS().SubscribeSync("lectern.test")
	require.NoError(t, err)
	require.NoError(t, a.NATS().Publish("lectern.test", []byte("hello")))
	msg, err := sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "hello", string(msg.Data))
}

func TestRestartKeepsSecret(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	first, err := New(cfg, zerolog.New(io.Discard))
	require.NoError(t, err)
	require.NoError(t, first.Start())
	tok, err := first.Signer().Mint(auth.Claims{Room: "r1", Role: auth.RoleTeacher}, time.Hour)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, first.Shutdown(ctx))

	second := startApp(t, cfg, zerolog.New(io.Discard))
	c, err := second.Signer().Verify(tok)
	require.NoError(t, err, "a token minted before the restart still verifies")
	require.Equal(t, "r1", c.Room)
}

func TestSecretFromConfig(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Secret = strings.Repeat("x", 40)
	a := startApp(t, cfg, zerolog.New(io.Discard))
	require.NoFileExists(t, filepath.Join(cfg.Data, "secret"), "a secret from the environment is not written down")

	other, err := auth.NewSigner([]byte(cfg.Secret))
	require.NoError(t, err)
	tok, err := other.Mint(auth.Claims{Room: "r", Role: auth.RoleStudent}, time.Hour)
	require.NoError(t, err)
	_, err = a.Signer().Verify(tok)
	require.NoError(t, err)
}

func TestURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		http       string
		display    string // host shown to people
		dialable   string // host clients dial
		openWarned bool
	}{
		{":0", "localhost", "127.0.0.1", true},
		{"0.0.0.0:0", "localhost", "127.0.0.1", true},
		{"127.0.0.1:0", "127.0.0.1", "127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.http, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.HTTP = tt.http
			var logs syncBuffer
			a := startApp(t, cfg, zerolog.New(&logs))
			port := a.Addr().Port
			require.NotZero(t, port)
			require.Equal(t, "http://"+net.JoinHostPort(tt.display, strconv.Itoa(port)), a.URL())
			require.Equal(t, "http://"+net.JoinHostPort(tt.dialable, strconv.Itoa(port)), a.BaseURL())
			code, _ := get(t, a.BaseURL()+"/healthz")
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, tt.openWarned, strings.Contains(logs.String(), "ANYONE WHO CAN REACH THIS SERVER"))
			require.Contains(t, logs.String(), a.URL(), "the URL is logged")
		})
	}
}

func TestTokensModeDoesNotWarn(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.HTTP, cfg.Auth = ":0", config.AuthTokens
	var logs syncBuffer
	startApp(t, cfg, zerolog.New(&logs))
	require.NotContains(t, logs.String(), "ANYONE WHO CAN REACH THIS SERVER")
}

func TestLogsNeverShowTheSecret(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Secret = "correct-horse-battery-staple-0123456789"
	var logs syncBuffer
	a := startApp(t, cfg, zerolog.New(&logs).Level(zerolog.TraceLevel))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, a.Shutdown(ctx))
	require.Contains(t, logs.String(), `"secret_from_env":true`)
	require.NotContains(t, logs.String(), "correct-horse")
}

func TestStartFailures(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { busy.Close() })
	blocker := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(blocker, []byte("x"), 0o600))

	tests := []struct {
		name    string
		mutate  func(*config.Config)
		message string
	}{
		{"HTTP port in use", func(c *config.Config) { c.HTTP = busy.Addr().String() }, "address already in use"},
		{"data directory cannot be made", func(c *config.Config) { c.Data = filepath.Join(blocker, "data") }, "data directory"},
		{"secret file too short", func(c *config.Config) {
			c.SecretFile = filepath.Join(t.TempDir(), "short")
			require.NoError(t, os.WriteFile(c.SecretFile, []byte("short\n"), 0o600))
		}, "secret"},
		{"ICE UDP port in use", func(c *config.Config) {
			u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			t.Cleanup(func() { u.Close() })
			c.UDPPort = u.LocalAddr().(*net.UDPAddr).Port
		}, "media engine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			tt.mutate(&cfg)
			a, err := New(cfg, zerolog.New(io.Discard))
			require.NoError(t, err)
			err = a.Start()
			require.ErrorContains(t, err, tt.message)
			require.ErrorIs(t, a.Start(), ErrClosed, "a failed App stays closed")
			require.NoError(t, a.Shutdown(context.Background()), "nothing is left to stop")
		})
	}
}

func TestStartTwice(t *testing.T) {
	t.Parallel()
	a := startApp(t, testConfig(t), zerolog.New(io.Discard))
	require.ErrorIs(t, a.Start(), ErrStarted)
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Auth = "everyone"
	_, err := New(cfg, zerolog.Nop())
	require.ErrorIs(t, err, config.ErrInvalid)
}

func TestShutdownBeforeStart(t *testing.T) {
	t.Parallel()
	a, err := New(testConfig(t), zerolog.Nop())
	require.NoError(t, err)
	require.NoError(t, a.Shutdown(context.Background()))
	require.Empty(t, a.URL())
	require.Nil(t, a.NATS())
}

// TestReadyzFollowsNATS: with the NATS connection gone the node reports
// itself not ready, and still shuts down cleanly.
func TestReadyzFollowsNATS(t *testing.T) {
	t.Parallel()
	a := startApp(t, testConfig(t), zerolog.New(io.Discard))
	a.NATS().Close()
	code, body := get(t, a.BaseURL()+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "NATS disconnected")
	code, _ = get(t, a.BaseURL()+"/healthz")
	require.Equal(t, http.StatusOK, code, "the process itself is healthy")
}

// A secret file that other users can read is used, with a warning; one
// that only its owner reads gets none.
func TestSecretFileModeWarning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o644, true}, {0o640, true}, {0o600, false}} {
		cfg := testConfig(t)
		cfg.SecretFile = filepath.Join(t.TempDir(), "secret")
		require.NoError(t, os.WriteFile(cfg.SecretFile, []byte(strings.Repeat("s", 40)), tc.mode))
		require.NoError(t, os.Chmod(cfg.SecretFile, tc.mode)) // past the umask
		var logs syncBuffer
		a := &App{cfg: cfg, log: zerolog.New(&logs)}
		require.NoError(t, a.loadSigner())
		require.NotNil(t, a.signer)
		warned := strings.Contains(logs.String(), `"level":"warn"`) && strings.Contains(logs.String(), "chmod 600")
		require.Equal(t, tc.warn, warned, "mode %04o: %s", tc.mode, logs.String())
	}
}
