package signaling

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/recording"
)

// joinAs exchanges invite at /api/join, from the address xff names when
// it is not empty.
func (e *testEnv) joinAs(invite, xff string) (int, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.http.URL+"/api/join", strings.NewReader(fmt.Sprintf(`{"token":%q,"name":"Sam"}`, invite)))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// /api/join is limited per invite: beyond the burst a 429 says when to
// retry; another invite is not held up.
func TestJoinRatePerInvite(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{limits: Limits{JoinRateInvite: 3, JoinRateIP: 1000}})
	inv := mustInvite(t, env, "ja")
	for range 3 {
		code, _ := env.joinAs(inv, "")
		require.Equal(t, http.StatusOK, code)
	}
	code, hdr := env.joinAs(inv, "")
	require.Equal(t, http.StatusTooManyRequests, code)
	require.NotEmpty(t, hdr.Get("Retry-After"))
	code, _ = env.joinAs(mustInvite(t, env, "jb"), "")
	require.Equal(t, http.StatusOK, code)
}

// /api/join is limited per client address; X-Forwarded-For names the
// client only when the peer is a trusted proxy.
func TestJoinRatePerAddress(t *testing.T) {
	t.Parallel()
	limits := Limits{JoinRateInvite: 1000, JoinRateIP: 2}
	direct := newEnv(t, envOpts{limits: limits})
	proxied := newEnvWith(t, func(o *Options) {
		o.Limits = limits
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	for _, e := range []*testEnv{direct, proxied} {
		inv := mustInvite(t, e, "jc")
		for i := range 2 {
			code, _ := e.joinAs(inv, fmt.Sprintf("203.0.113.%d", i))
			require.Equal(t, http.StatusOK, code)
		}
	}
	inv := mustInvite(t, direct, "jc")
	code, _ := direct.joinAs(inv, "203.0.113.9")
	require.Equal(t, http.StatusTooManyRequests, code, "a forged X-Forwarded-For gets nothing more")

	code, _ = proxied.joinAs(inv, "203.0.113.0")
	require.Equal(t, http.StatusOK, code, "each client behind the proxy has its own budget")
	code, _ = proxied.joinAs(inv, "203.0.113.0")
	require.Equal(t, http.StatusTooManyRequests, code)
	code, _ = proxied.joinAs(inv, "203.0.113.0, 203.0.113.50")
	require.Equal(t, http.StatusOK, code, "the address the proxy appended counts, not the client's own entries")
}

// An operator token for one class lists that class only; one for every
// class lists them all.
func TestRoomsForOneClassOperator(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	env.join(env.token("ra", auth.RoleTeacher, "t1", "Tess"))
	env.join(env.token("rb", auth.RoleTeacher, "t2", "Tom"))
	rooms := func(room string) string {
		res := env.mediaReq(http.MethodGet, "/api/rooms", env.token(room, auth.RoleOperator, "op", ""), "", "")
		require.Equal(t, http.StatusOK, res.status, res.body)
		return res.body
	}
	one := rooms("ra")
	require.Contains(t, one, `"room":"ra"`)
	require.NotContains(t, one, `"rb"`)
	all := rooms(auth.AllRooms)
	require.Contains(t, all, `"room":"ra"`)
	require.Contains(t, all, `"room":"rb"`)
}

// Connections that trickle a request body are cut off at the body
// timeout with 408, not held for as long as they care to send.
func TestSlowBodiesAreCutOff(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{tm: func(tm *timings) { tm.body = 300 * time.Millisecond }})
	addr := strings.TrimPrefix(env.http.URL, "http://")
	paths := []string{"/api/join", "/api/classes", "/whep/slow"}
	const n = 12
	var wg sync.WaitGroup
	statuses := make([]string, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = trickle(t, addr, paths[i%len(paths)])
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		// A refusal before the body is read (the WHEP POST's bad token)
		// is answered as the body times out too.
		want := "408 Request Timeout"
		if strings.HasPrefix(paths[i%len(paths)], "/whep") {
			want = "401 Unauthorized"
		}
		require.Equal(t, "HTTP/1.1 "+want+"\r\n closed", s, "connection %d", i)
	}
	require.Less(t, time.Since(start), 3*time.Second)
}

// trickle sends a request whose body comes one byte every 50 ms, for at
// most 4 s, and returns the status line the server answers with and
// "closed" once the server has closed the connection.
func trickle(t *testing.T, addr, path string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	ctype := "application/json"
	if strings.HasPrefix(path, "/whep") {
		ctype = "application/sdp"
	}
	_, _ = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: 1000\r\n"+
		"Authorization: Bearer x\r\n\r\n", path, addr, ctype)
	answered := make(chan string, 1)
	go func() {
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		// Returns when the server closes: a FIN, or a reset when our
		// trickled bytes were left unread.
		_, _ = io.Copy(io.Discard, br)
		answered <- line + " closed"
	}()
	deadline := time.After(4 * time.Second)
	for {
		select {
		case line := <-answered:
			return line
		case <-deadline:
			return "still open after 4s"
		case <-time.After(50 * time.Millisecond):
			_, _ = c.Write([]byte("a"))
		}
	}
}

// The replay cookie is Secure when clients come over HTTPS: through a
// trusted proxy saying so, or by the public URL; a header from anyone
// else changes nothing.
func TestReplayCookieSecureBehindProxy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		trusted bool
		public  string
		proto   string
		secure  bool
	}{
		{"plain", false, "", "", false},
		{"untrusted header", false, "", "https", false},
		{"trusted proxy https", true, "", "https", true},
		{"trusted proxy http", true, "", "http", false},
		{"public url", false, "https://lectern.example", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := newEnvWith(t, func(o *Options) {
				o.Recording = RecordingOptions{Dir: dir}
				o.PublicURL = tc.public
				if tc.trusted {
					o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
				}
			})
			id := recording.NewID()
			require.NoError(t, env.srv.rec.cat.Put(recording.Info{ID: id, Room: "rc", Start: time.Now(),
				Path: dir + "/" + string(id) + ".webm", Complete: true}))
			op := env.token("rc", auth.RoleOperator, "op", "")
			res := env.mediaReq(http.MethodPost, "/api/recordings/"+string(id)+"/session", op, "", "", "X-Forwarded-Proto", tc.proto)
			require.Equal(t, http.StatusNoContent, res.status, res.body)
			cookies := (&http.Response{Header: res.header}).Cookies()
			require.Len(t, cookies, 1)
			require.Equal(t, tc.secure, cookies[0].Secure)
		})
	}
}
