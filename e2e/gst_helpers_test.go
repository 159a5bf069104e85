package e2e

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// gstProc is one of the GStreamer clients of testdata (gst_*.py) running,
// its output read line by line.
type gstProc struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{} // signalled on every new line
	done  chan struct{} // closed when the process has exited
	err   error
}

// startGST runs the script from testdata with the machine's Python (the
// one Debian's GStreamer bindings are for); it is stopped, and its
// output logged, when the test ends.
func startGST(t *testing.T, script string, args ...string) *gstProc {
	t.Helper()
	python := findGStreamerPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, python, append([]string{filepath.Join("testdata", script)}, args...)...)
	// No __pycache__ left in testdata.
	cmd.Env = append(cmd.Environ(), "GST_DEBUG=1", "PYTHONDONTWRITEBYTECODE=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	g := &gstProc{more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			g.mu.Lock()
			g.lines = append(g.lines, sc.Text())
			g.mu.Unlock()
			select {
			case g.more <- struct{}{}:
			default:
			}
		}
		g.err = cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-g.done
		t.Logf("%s %s:\n%s", script, strings.Join(args[min(3, len(args)):], " "), g.output())
	})
	return g
}

func (g *gstProc) output() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.lines, "\n")
}

// line waits for an output line starting with prefix and returns it.
func (g *gstProc) line(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		for _, l := range g.lines {
			if strings.HasPrefix(l, prefix) {
				g.mu.Unlock()
				return l
			}
		}
		g.mu.Unlock()
		select {
		case <-g.more:
		case <-g.done:
			// The last lines may have come with the exit.
			select {
			case <-g.more:
				continue
			default:
			}
			t.Fatalf("GStreamer client exited (%v) before printing %q:\n%s", g.err, prefix, g.output())
		case <-deadline.C:
			t.Fatalf("no %q from the GStreamer client within %v:\n%s", prefix, timeout, g.output())
		}
	}
}

// wait waits for the process to exit by itself and fails on an error.
func (g *gstProc) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-g.done:
	case <-time.After(timeout):
		t.Fatalf("GStreamer client still running after %v:\n%s", timeout, g.output())
	}
	if g.err != nil {
		t.Fatalf("GStreamer client failed: %v\n%s", g.err, g.output())
	}
}
