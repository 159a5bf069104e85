package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"lectern/app"
	"lectern/auth"
	"lectern/client"
	"lectern/config"
)

const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
)

// target is the server a run measures.
type target struct {
	base   string
	what   string       // for people: "local server (pid 123)", the URL...
	signer *auth.Signer // nil when the tokens were given
	pid    int          // a process on this machine to measure, 0 if none
	stop   func() error
}

// openTarget starts the local server, or names the one at o.URL.
func openTarget(ctx context.Context, o *Options, log zerolog.Logger) (*target, error) {
	switch {
	case o.URL != "":
		return remoteTarget(o)
	case o.InProcess:
		return inProcessTarget(log)
	default:
		return childTarget(ctx, o)
	}
}

func remoteTarget(o *Options) (*target, error) {
	t := &target{base: strings.TrimRight(o.URL, "/"), what: o.URL, pid: o.ServerPID, stop: func() error { return nil }}
	if o.TeacherToken != "" {
		return t, nil
	}
	path := o.SecretFile
	if path == "" {
		path = filepath.Join(o.Data, "secret")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: token secret: %w (give --token and --student-token, or --secret-file or --data)", ErrUsage, err)
	}
	if t.signer, err = auth.NewSigner(bytes.TrimSpace(b)); err != nil {
		return nil, fmt.Errorf("%w: token secret %s: %w", ErrUsage, path, err)
	}
	return t, nil
}

// childTarget runs `lectern serve` as a child process, so its CPU time and
// memory are read from /proc apart from the tool's own. It listens on
// loopback only, with a fresh data directory and a fresh secret.
func childTarget(ctx context.Context, o *Options) (*target, error) {
	bin := o.ServerBinary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrServer, err)
		}
	}
	secret, err := auth.NewRandomSecret()
	if err != nil {
		return nil, err
	}
	signer, err := auth.NewSigner([]byte(secret))
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrServer, err)
	}
	dir, err := os.MkdirTemp("", "lectern-bench-")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrServer, err)
	}
	c := &child{dir: dir, base: "http://127.0.0.1:" + strconv.Itoa(port), exited: make(chan struct{})}
	if err := c.start(bin, port, secret, o.ServerArgs); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, errors.Join(err, c.stop())
	}
	what := fmt.Sprintf("local server %s (pid %d)", filepath.Base(bin), c.cmd.Process.Pid)
	return &target{base: c.base, what: what, signer: signer, pid: c.cmd.Process.Pid, stop: c.stop}, nil
}

// child is the local server process.
type child struct {
	dir     string
	base    string
	cmd     *exec.Cmd
	stderr  tail
	exited  chan struct{}
	waitErr error // set before exited closes
}

func (c *child) start(bin string, port int, secret string, extra []string) error {
	args := []string{
		"serve", "--http", "127.0.0.1:" + strconv.Itoa(port), "--udp-port", "0", "--tcp-port", "-1",
		"--public-ip", "127.0.0.1", "--data", c.dir, "--auth", config.AuthTokens,
		"--log-level", "warn", "--log-format", config.LogJSON,
	}
	c.cmd = exec.Command(bin, append(args, extra...)...)
	c.cmd.Env = childEnv(os.Environ(), secret)
	c.cmd.Stdout = io.Discard
	c.cmd.Stderr = &c.stderr
	// The server dies with the tool even if the tool is killed.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("%w: start %s: %w", ErrServer, bin, err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	return nil
}

// childEnv passes the environment on without LECTERN_* settings, which
// would change the server under test, and with the run's secret.
func childEnv(env []string, secret string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "LECTERN_") {
			out = append(out, kv)
		}
	}
	return append(out, "LECTERN_SECRET="+secret)
}

// waitReady polls /readyz until the server answers 200.
func (c *child) waitReady(ctx context.Context) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if resp, err := hc.Get(c.base + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.exited:
			return fmt.Errorf("%w: exited before it was ready: %v\n%s", ErrServer, c.waitErr, c.stderr.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%w: not ready after %v\n%s", ErrServer, readyTimeout, c.stderr.String())
}

// stop asks the server to stop (SIGTERM), kills it if it takes too long,
// and removes its data directory.
func (c *child) stop() error {
	defer os.RemoveAll(c.dir)
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(stopTimeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%w: did not stop within %v; killed", ErrServer, stopTimeout)
	}
	if c.waitErr != nil {
		return fmt.Errorf("%w: %w\n%s", ErrServer, c.waitErr, c.stderr.String())
	}
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// inProcessTarget runs the server inside the tool, for CPU profiles of the
// forwarding path (--cpuprofile); its CPU time is then the tool's.
func inProcessTarget(log zerolog.Logger) (*target, error) {
	secret, err := auth.NewRandomSecret()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "lectern-bench-")
	if err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.HTTP, cfg.UDPPort, cfg.TCPPort, cfg.PublicIP = "127.0.0.1:0", 0, -1, "127.0.0.1"
	cfg.Data, cfg.Auth, cfg.Secret, cfg.LogLevel = dir, config.AuthTokens, secret, "warn"
	a, err := app.New(cfg, log)
	if err == nil {
		err = a.Start()
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("%w: %w", ErrServer, err)
	}
	stop := func() error {
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		return a.Shutdown(ctx)
	}
	return &target{base: a.BaseURL(), what: "in-process server", signer: a.Signer(), stop: stop}, nil
}

// tokenSource gives the publisher's and the students' tokens.
type tokenSource interface {
	teacher() (string, error)
	student(n int) (string, error)
}

// mintedTokens signs a personal token for each participant.
type mintedTokens struct {
	signer *auth.Signer
	room   string
}

func (m mintedTokens) teacher() (string, error) {
	return client.MintToken(m.signer, m.room, auth.RoleTeacher, "Bench teacher", "")
}

func (m mintedTokens) student(n int) (string, error) {
	return client.MintToken(m.signer, m.room, auth.RoleStudent, "Student "+strconv.Itoa(n+1), "")
}

// givenTokens are tokens the operator minted; every student shares one.
type givenTokens struct{ teacherTok, studentTok string }

func (g givenTokens) teacher() (string, error) { return g.teacherTok, nil }

func (g givenTokens) student(int) (string, error) { return g.studentTok, nil }

// tail keeps the last tailSize bytes written to it: the child's log, for
// error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 8 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailSize:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
