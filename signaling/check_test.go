package signaling

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"lectern/auth"
)

const goodCheckReport = `{"role":"student","websocket":"ok","udp":"blocked","tcp":"ok","turn":"skipped",` +
	`"camera":"skipped","microphone":"skipped","download_kbps":12000}`

// The check's endpoints refuse what is not theirs to take with a 4xx.
func TestCheckBadInput(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, limits: Limits{CheckRateIP: 6000}})
	replayTok, err := env.signer.Mint(auth.Claims{Room: "r1", Role: auth.RoleStudent, Participant: "p", Recording: "rec1"}, time.Minute)
	require.NoError(t, err)
	for _, c := range []struct {
		name, method, path, ctype, token, body string
		want                                   int
	}{
		{"report not json", "POST", "/api/check/report", "text/plain", "", goodCheckReport, 415},
		{"report malformed", "POST", "/api/check/report", "application/json", "", `{"role":`, 400},
		{"report unknown field", "POST", "/api/check/report", "application/json", "",
			strings.Replace(goodCheckReport, `"role"`, `"client":"x","role"`, 1), 400},
		{"report bad role", "POST", "/api/check/report", "application/json", "",
			strings.Replace(goodCheckReport, `"student"`, `"operator"`, 1), 400},
		{"report bad result", "POST", "/api/check/report", "application/json", "",
			strings.Replace(goodCheckReport, `"udp":"blocked"`, `"udp":"<script>"`, 1), 400},
		{"report missing result", "POST", "/api/check/report", "application/json", "",
			strings.Replace(goodCheckReport, `"tcp":"ok",`, ``, 1), 400},
		{"report negative rate", "POST", "/api/check/report", "application/json", "",
			strings.Replace(goodCheckReport, `12000`, `-1`, 1), 400},
		{"report huge rate", "POST", "/api/check/report", "application/json", "",
			strings.Replace(goodCheckReport, `12000`, `10000001`, 1), 400},
		{"report too large", "POST", "/api/check/report", "application/json", "",
			`{"role":"` + strings.Repeat("x", 20<<10) + `"}`, 413},
		{"download zero", "GET", "/api/check/download?bytes=0", "", "", "", 400},
		{"download not a number", "GET", "/api/check/download?bytes=1e6", "", "", "", 400},
		{"download too large", "GET", "/api/check/download?bytes=8388609", "", "", "", 400},
		{"probe not sdp", "POST", "/api/check/probe", "application/json", "", "{}", 415},
		{"probe malformed", "POST", "/api/check/probe", "application/sdp", "", "v=0\r\nnonsense", 400},
		{"config bad token", "GET", "/api/check", "", "not-a-token", "", 401},
		{"config replay link", "GET", "/api/check", "", replayTok, "", 403},
		{"report by GET", "GET", "/api/check/report", "", "", "", 405},
	} {
		res := env.mediaReq(c.method, c.path, c.token, c.ctype, c.body)
		require.Equal(t, c.want, res.status, "%s: %s", c.name, res.body)
	}
	require.NotContains(t, env.metrics(), "lectern_check_results_total{", "no bad report is counted")
}

// A good report is counted by test and result, and by verdict.
func TestCheckReportCounted(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	for range 2 {
		res := env.mediaReq("POST", "/api/check/report", "", "application/json", goodCheckReport)
		require.Equal(t, http.StatusNoContent, res.status, res.body)
	}
	m := env.metrics()
	for _, want := range []string{
		`lectern_check_results_total{result="blocked",test="udp"} 2`,
		`lectern_check_results_total{result="ok",test="tcp"} 2`,
		`lectern_check_results_total{result="skipped",test="camera"} 2`,
		`lectern_check_reports_total{verdict="tcp"} 2`,
		`lectern_check_download_mbps_bucket{le="25"} 2`,
		`lectern_check_download_mbps_count 2`,
	} {
		require.Contains(t, m, want)
	}
	require.NotContains(t, m, `lectern_check_reports_total{verdict="udp"}`)
}

// metrics reads /metrics.
func (e *testEnv) metrics() string {
	e.t.Helper()
	code, _, body := e.httpDo("GET", "/metrics", "", "")
	require.Equal(e.t, http.StatusOK, code)
	return string(body)
}

// One address gets a burst of half a minute's requests over all the
// check's endpoints, then a 429 that says when to retry; the page and
// another address are not held up.
func TestCheckRateLimit(t *testing.T) {
	t.Parallel()
	env := newEnvWith(t, func(o *Options) {
		o.Limits.CheckRateIP = 6 // a burst of 3
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		o.Web = testWeb()
	})
	for _, path := range []string{"/api/check", "/api/check/download?bytes=10", "/api/check"} {
		require.Equal(t, http.StatusOK, env.mediaReq("GET", path, "", "", "").status, path)
	}
	res := env.mediaReq("POST", "/api/check/report", "", "application/json", goodCheckReport)
	require.Equal(t, http.StatusTooManyRequests, res.status)
	require.NotEmpty(t, res.header.Get("Retry-After"))
	res = env.mediaReq("POST", "/api/check/probe", "", "application/sdp", "v=0")
	require.Equal(t, http.StatusTooManyRequests, res.status)
	res = env.mediaReq("GET", "/api/check", "", "", "", "X-Forwarded-For", "192.0.2.7")
	require.Equal(t, http.StatusOK, res.status, "another address")
}

// The download is exactly as long as asked, of bytes that do not repeat.
func TestCheckDownload(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	res := env.mediaReq("GET", "/api/check/download?bytes=100000", "", "", "")
	require.Equal(t, http.StatusOK, res.status)
	require.Len(t, res.body, 100000)
	require.Equal(t, "no-store", res.header.Get("Cache-Control"))
	require.NotEqual(t, res.body[:32<<10], res.body[32<<10:64<<10])
	full := env.srv.check
	for range maxCheckDownloads {
		require.True(t, full.ndown.take(maxCheckDownloads))
	}
	require.Equal(t, http.StatusTooManyRequests, env.mediaReq("GET", "/api/check/download", "", "", "").status)
}

// The websocket check returns the first message and closes normally; a
// message over 256 bytes closes with 1009.
func TestCheckEcho(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	url := "ws" + strings.TrimPrefix(env.http.URL, "http") + "/api/check/ws"
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	require.NoError(t, err)
	defer ws.Close()
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte("hello lectern")))
	_, msg, err := ws.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "hello lectern", string(msg))
	_, _, err = ws.ReadMessage()
	require.True(t, websocket.IsCloseError(err, websocket.CloseNormalClosure), "%v", err)

	big, _, err := websocket.DefaultDialer.Dial(url, nil)
	require.NoError(t, err)
	defer big.Close()
	require.NoError(t, big.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", maxCheckEcho+1))))
	_, _, err = big.ReadMessage()
	require.True(t, websocket.IsCloseError(err, websocket.CloseMessageTooBig), "%v", err)

	binary, _, err := websocket.DefaultDialer.Dial(url, nil)
	require.NoError(t, err)
	defer binary.Close()
	require.NoError(t, binary.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}))
	_, _, err = binary.ReadMessage()
	require.True(t, websocket.IsCloseError(err, websocket.CloseUnsupportedData), "%v", err)

	silent, _, err := websocket.DefaultDialer.Dial(url, nil)
	require.NoError(t, err)
	defer silent.Close()
	start := time.Now()
	_, _, err = silent.ReadMessage()
	require.True(t, websocket.IsCloseError(err, websocket.ClosePolicyViolation), "%v", err)
	require.Less(t, time.Since(start), checkEchoTime+2*time.Second, "closed within the bound")
}

// A probe connects a real peer to the node with no token, gives its slot
// back when the peer closes, and is refused while the node's probes are
// all in use.
func TestCheckProbe(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true})
	v, res := env.newWHEP(t, "/api/check/probe", "", nil, false)
	require.Equal(t, http.StatusCreated, res.status, res.body)
	waitPCConnected(t, v.pc)
	c := env.srv.check
	require.Eventually(t, func() bool {
		c.nprobe.mu.Lock()
		defer c.nprobe.mu.Unlock()
		return c.nprobe.n == 0
	}, 10*time.Second, 20*time.Millisecond, "the probe closes once it has connected")

	for range maxCheckProbes {
		require.True(t, c.nprobe.take(maxCheckProbes))
	}
	_, res = env.newWHEP(t, "/api/check/probe", "", nil, false)
	require.Equal(t, http.StatusTooManyRequests, res.status)
	require.NotEmpty(t, res.header.Get("Retry-After"))
}

// GET /api/check hands out no ICE servers without a token, and says
// whether TURN runs.
func TestCheckConfig(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	inv := mustInvite(t, env, "cfg")
	for _, tok := range []string{"", inv} {
		res := env.mediaReq("GET", "/api/check", tok, "", "")
		require.Equal(t, http.StatusOK, res.status)
		var got checkConfigResponse
		require.NoError(t, json.Unmarshal([]byte(res.body), &got))
		require.False(t, got.TURN)
		require.Empty(t, got.ICEServers)
	}
}
