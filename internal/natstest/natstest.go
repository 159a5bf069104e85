// Package natstest runs a stock nats-server process with JetStream for
// tests that are about separate processes: a node joined to an external
// NATS, and NATS stopping and coming back on the same port with its store.
package natstest

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Process is a stock `nats-server -js` on a fixed loopback port with its
// own store; Stop and Start may be called again, on both.
type Process struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
}

// Start runs the server on a free port; it is stopped at cleanup.
func Start(t testing.TB) *Process {
	t.Helper()
	p := &Process{t: t, bin: Binary(t), dir: t.TempDir(), port: freePort(t)}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Binary finds the stock nats-server (Debian's package puts it in
// /usr/sbin, often not in a user's PATH). The test fails, rather than
// skips, when it is missing: it is part of the environment Lectern
// supports, and the test command installs it.
func Binary(t testing.TB) string {
	t.Helper()
	for _, b := range []string{"nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"} {
		if path, err := exec.LookPath(b); err == nil {
			return path
		}
	}
	t.Fatal("nats-server must be installed (apt-get install nats-server)")
	return ""
}

// URL is the server's client URL.
func (p *Process) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(p.port) }

// Start starts the server again on its port and store, and returns once
// it listens.
func (p *Process) Start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(p.port), "-js", "-sd", p.dir)
	require.NoError(p.t, p.cmd.Start())
	require.Eventually(p.t, func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p.port), 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "nats-server listens")
}

// Stop kills the server, the way a crashed NATS host stops.
func (p *Process) Stop() {
	if p.cmd != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

// LoseStore makes the next Start begin with an empty store, as a NATS
// host whose disk was replaced.
func (p *Process) LoseStore() { p.dir = p.t.TempDir() }

// freePort is a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
