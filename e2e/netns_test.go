package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"lectern/config"
)

// netns is a network namespace the test made: one veth pair, the node's
// end (host) in this namespace and the student's (peer) in the new one,
// with an nftables ruleset standing for the student's firewall. Traffic
// only ever goes between the pair's two addresses.
type netns struct {
	name       string
	host, peer string // IPv4 addresses of the pair's two ends
}

func run(t *testing.T, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%v: %s", args, out)
}

// newNetns makes the namespace and its veth pair, with firewall as the
// nftables ruleset of its output (a format string given the node's address).
func newNetns(t *testing.T) *netns {
	t.Helper()
	require.Zero(t, os.Geteuid(), "network namespaces need root")
	for _, tool := range []string{"ip", "nft"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s not found: run scripts/test, which installs it", tool)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	// A /30 of its own, one of 50*256*64 in 10.200.0.0 to 10.249.255.255,
	// so that tests running at once do not share a prefix.
	x, y, z := 200+int(b[0])%50, int(b[1]), int(b[2]&0xFC)
	n := &netns{name: "lct" + id, host: fmt.Sprintf("10.%d.%d.%d", x, y, z+1), peer: fmt.Sprintf("10.%d.%d.%d", x, y, z+2)}
	hostIf, peerIf := "lh"+id, "lp"+id
	run(t, "", "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", n.name).Run()
		_ = exec.Command("ip", "link", "del", hostIf).Run()
	})
	run(t, "", "ip", "link", "add", hostIf, "type", "veth", "peer", "name", peerIf)
	run(t, "", "ip", "link", "set", peerIf, "netns", n.name)
	run(t, "", "ip", "addr", "add", n.host+"/30", "dev", hostIf)
	run(t, "", "ip", "link", "set", hostIf, "up")
	for _, c := range [][]string{{"addr", "add", n.peer + "/30", "dev", peerIf}, {"link", "set", peerIf, "up"}, {"link", "set", "lo", "up"}} {
		run(t, "", append([]string{"ip", "netns", "exec", n.name, "ip"}, c...)...)
	}
	return n
}

// firewall loads an nftables ruleset into the namespace.
func (n *netns) firewall(t *testing.T, rules string) {
	t.Helper()
	run(t, rules, "ip", "netns", "exec", n.name, "nft", "-f", "-")
}

// dial connects to addr from inside the namespace: a thread of its own
// enters it (setns(2)) and is discarded with its goroutine.
func (n *netns) dial(addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open("/var/run/netns/" + n.name)
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			_ = f.Close()
		}
		if err != nil {
			ch <- result{err: err}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// turnNode starts a node (tokens mode) on the namespace's host address
// with TURN over UDP, TCP and TLS, with a certificate for that address,
// all on free ports; single puts it in single-port mode.
func (n *netns) turnNode(t *testing.T, single bool) *server {
	t.Helper()
	cert, key := writeCert(t, n.host)
	return startServerWith(t, "tokens", func(cfg *config.Config) {
		cfg.HTTP, cfg.PublicIP = n.host+":0", n.host
		cfg.SinglePort, cfg.TURN, cfg.TURNUDPPort, cfg.TURNTCPPort, cfg.TURNTLSPort = single, true, 0, 0, 0
		cfg.TURNTLSCert, cfg.TURNTLSKey = cert, key
	})
}

var devtoolsLine = regexp.MustCompile(`DevTools listening on ws://([^/]+)(/devtools/browser/\S+)`)

// browserIn runs headless Chromium inside the namespace and drives it
// through a forwarder from this namespace to its DevTools port.
func (n *netns) browserIn(t *testing.T, chromium string) *browser {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name, chromium}, chromiumFlags(t)...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its own process group
		_ = cmd.Wait()
	})
	devtools := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := devtoolsLine.FindStringSubmatch(sc.Text()); m != nil {
				devtools <- m
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	var m []string
	select {
	case m = <-devtools:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium in the namespace did not start")
	}
	fwd := n.forward(t, m[1])
	actx, acancel := remote.NewAllocator(context.Background(), "ws://"+fwd+m[2], remote.NoModifyURL)
	bctx, bcancel := chromedp.NewContext(actx)
	b := &browser{ctx: bctx, artifacts: artifactDir(t)}
	t.Cleanup(func() {
		b.dumpOnFailure(t)
		for _, tb := range b.tabs {
			tb.cancel()
			<-tb.done
		}
		bcancel()
		acancel()
	})
	require.NoError(t, chromedp.Do(bctx), "attach to chromium")
	return b
}

// forward listens on loopback here and connects each client to target
// inside the namespace.
func (n *netns) forward(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := n.dial(target)
			if err != nil {
				_ = c.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// chromiumFlags are newBrowser's, for a process started by hand.
func chromiumFlags(t *testing.T) []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--remote-debugging-port=0", "--user-data-dir=" + t.TempDir(), "--window-size=1280,800",
		"--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
		"--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
		"--disable-background-timer-throttling", "--disable-renderer-backgrounding",
		"--disable-backgrounding-occluded-windows", "--autoplay-policy=no-user-gesture-required",
		"--disable-features=WebRtcHideLocalIpsWithMdns,Translate",
		// The node's TURN over TLS has a certificate of the test's own.
		"--ignore-certificate-errors", "about:blank",
	}
}
