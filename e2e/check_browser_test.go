package e2e

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
)

// checkResults reads the connection check page's results by test id.
const checkResultsScript = `(() => {
  const out = {};
  for (const e of document.querySelectorAll('[data-testid^="check-"]')) {
    out[e.dataset.testid] = {state: e.dataset.state || '', text: e.textContent.trim()};
  }
  return out;
})()`

type checkResult struct {
	State string `json:"state"`
	Text  string `json:"text"`
}

// waitCheck waits for the check page to have sent its report and returns
// every result.
func (tb *tab) waitCheck(t *testing.T) map[string]checkResult {
	t.Helper()
	var got map[string]checkResult
	waitFor(t, 90*time.Second, tb.name+": the check's report", func() (bool, string) {
		r, err := eval[map[string]checkResult](tb, checkResultsScript)
		got = r
		return err == nil && r["check-reported"].State != "running" && r["check-reported"].State != "",
			fmt.Sprintf("%v err=%v", r, err)
	})
	t.Logf("%s: %v", tb.name, got)
	return got
}

// metricsText reads the node's /metrics.
func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestBrowserCheckLoopback: on loopback, where UDP works, a teacher's
// check finds UDP, ICE-TCP, the camera and the microphone working, says
// classes should run smoothly, and the node counts the report.
func TestBrowserCheckLoopback(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "open")
	b := newBrowser(t, findChromium(t))
	tb := b.open(t, "teacher", srv.base+"/check?role=teacher")
	got := tb.waitCheck(t)
	require.Equal(t, checkResult{"ok", "Connected"}, got["check-websocket"])
	require.Equal(t, checkResult{"ok", "UDP works"}, got["check-udp"])
	require.Equal(t, "ok", got["check-tcp"].State, got["check-tcp"].Text)
	require.Equal(t, checkResult{"skipped", "Not offered by this server"}, got["check-turn"])
	require.Equal(t, "ok", got["check-download"].State, got["check-download"].Text)
	require.Equal(t, checkResult{"ok", "Camera works"}, got["check-camera"])
	require.Equal(t, checkResult{"ok", "Microphone works"}, got["check-microphone"])
	require.Equal(t, "done", got["check-summary"].State)
	require.Contains(t, got["check-summary"].Text, "Your network lets video through directly.")
	require.Equal(t, "ok", got["check-reported"].State)
	m := metricsText(t, srv.base)
	require.Contains(t, m, `lectern_check_results_total{result="ok",test="udp"} 1`)
	require.Contains(t, m, `lectern_check_results_total{result="ok",test="camera"} 1`)
	require.Contains(t, m, `lectern_check_reports_total{verdict="udp"} 1`)
}

// TestBrowserCheckLinks: the lobby links teachers to the check, and a
// student's name form links to it with the class's invite, which lets
// the check test TURN.
func TestBrowserCheckLinks(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "open")
	b := newBrowser(t, findChromium(t))
	href := func(tb *tab) string {
		var got string
		waitFor(t, 20*time.Second, tb.name+": the check link", func() (bool, string) {
			h, err := eval[string](tb, `document.querySelector('[data-testid="check-link"]')?.getAttribute('href') ?? ''`)
			got = h
			return err == nil && h != "" && h != "/check", h
		})
		return got
	}
	require.Equal(t, "/check?role=teacher", href(b.open(t, "lobby", srv.base+"/")))
	room := newRoom()
	inv, err := srv.signer.Mint(auth.Claims{Room: room, Role: auth.RoleStudent, Participant: "invite", Invite: true}, time.Hour)
	require.NoError(t, err)
	require.Equal(t, "/check#token="+inv, href(b.open(t, "student", srv.base+"/room/"+room+"#token="+inv)))
}

// TestBrowserCheckFirewalls: a student opens the check from the class's
// invite in a network namespace whose firewall (a) drops all UDP: the
// page reads "UDP blocked", finds ICE-TCP and TURN over TLS working, and
// says Lectern will use the ICE-TCP port; (b) lets out only TCP to the
// pages and to TURN over TLS: UDP and TCP are blocked and the page says
// Lectern will use the TURN over TLS port.
func TestBrowserCheckFirewalls(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	for _, c := range []struct {
		name     string
		firewall func(ns *netns, srv *server) string
		tcp      bool
	}{
		{"udp blocked", func(*netns, *server) string {
			return "table inet lectern {\n chain out {\n type filter hook output priority 0; policy accept;\n" +
				" meta l4proto udp drop\n }\n}\n"
		}, true},
		{"only the pages and turn over tls", func(ns *netns, srv *server) string {
			return onlyTCPTo(ns, srv.app.Addr().Port, port(srv.app.TURN().Addrs().TLS.String()))
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := newNetns(t)
			srv := ns.turnNode(t, false)
			ns.firewall(t, c.firewall(ns, srv))
			inv, err := srv.signer.Mint(auth.Claims{Room: newRoom(), Role: auth.RoleStudent, Participant: "invite",
				Invite: true}, time.Hour)
			require.NoError(t, err)

			b := ns.browserIn(t, chromium)
			got := b.open(t, "student", srv.base+"/check#token="+inv).waitCheck(t)
			require.Equal(t, checkResult{"ok", "Connected"}, got["check-websocket"])
			require.Equal(t, checkResult{"blocked", "UDP blocked"}, got["check-udp"])
			tcpPort, tlsPort := srv.app.Engine().TCPAddr().Port, port(srv.app.TURN().Addrs().TLS.String())
			require.Equal(t, checkResult{"ok", fmt.Sprintf("TURN over TLS works (port %d)", tlsPort)}, got["check-turn"])
			require.Equal(t, checkResult{"skipped", "Not tested (teachers only)"}, got["check-camera"])
			verdict, usePort := "tcp", tcpPort
			if c.tcp {
				require.Equal(t, checkResult{"ok", fmt.Sprintf("TCP works (port %d)", tcpPort)}, got["check-tcp"])
			} else {
				require.Equal(t, checkResult{"blocked", "TCP blocked"}, got["check-tcp"])
				verdict, usePort = "turn", tlsPort
			}
			require.Equal(t, fmt.Sprintf("Your network blocks UDP; Lectern will use port %d. Video may lag a little.", usePort),
				got["check-summary"].Text)
			require.Equal(t, "ok", got["check-reported"].State)
			m := metricsText(t, srv.base)
			require.Contains(t, m, `lectern_check_results_total{result="blocked",test="udp"} 1`)
			require.Contains(t, m, `lectern_check_reports_total{verdict="`+verdict+`"} 1`)
		})
	}
}
