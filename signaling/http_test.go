package signaling

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
)

func TestCreateClass(t *testing.T) {
	t.Parallel()
	open := newEnv(t, envOpts{mode: AuthOpen})
	code, hdr, body := open.httpDo("POST", "/api/classes", "application/json", `{"title":"Algebra","teacher_name":"Tess"}`)
	require.Equal(t, http.StatusCreated, code, "%s", body)
	require.Equal(t, "application/json", hdr.Get("Content-Type"))
	var res classResponse
	require.NoError(t, json.Unmarshal(body, &res))
	require.Len(t, res.Room, 10)
	require.True(t, strings.HasPrefix(res.TeacherURL, "/room/"+res.Room+"#token="))
	require.True(t, strings.HasPrefix(res.StudentURL, "/room/"+res.Room+"#token="))

	tc, err := open.signer.Verify(strings.SplitN(res.TeacherURL, "#token=", 2)[1])
	require.NoError(t, err)
	require.Equal(t, auth.Claims{Room: res.Room, Role: auth.RoleTeacher, Name: "Tess", Title: "Algebra",
		Participant: tc.Participant, IssuedAt: tc.IssuedAt, Expiry: tc.Expiry}, tc)
	require.InDelta(t, time.Now().Add(DefaultInviteTTL).Unix(), tc.Expiry, 5)
	inv, err := open.signer.Verify(strings.SplitN(res.StudentURL, "#token=", 2)[1])
	require.NoError(t, err)
	require.True(t, inv.Invite)
	require.Equal(t, auth.RoleStudent, inv.Role)
	require.Empty(t, inv.Name)
	require.Equal(t, "Algebra", inv.Title, "the invite carries the class title to the students")

	// The teacher link joins its class.
	_, w := open.join(strings.SplitN(res.TeacherURL, "#token=", 2)[1])
	require.Equal(t, res.Room, w.Room)

	bad := []struct {
		name, ctype, body string
		code              int
	}{
		{"no name", "application/json", `{"title":"x","teacher_name":""}`, http.StatusBadRequest},
		{"name too long", "application/json", `{"teacher_name":"` + strings.Repeat("n", 65) + `"}`, http.StatusBadRequest},
		{"unknown field", "application/json", `{"teacher_name":"T","admin":true}`, http.StatusBadRequest},
		{"wrong type", "application/json", `{"teacher_name":5}`, http.StatusBadRequest},
		{"not json", "application/json", `teacher_name=T`, http.StatusBadRequest},
		{"form post", "application/x-www-form-urlencoded", `{"teacher_name":"T"}`, http.StatusUnsupportedMediaType},
		{"too large", "application/json", `{"title":"` + strings.Repeat("t", 20<<10) + `","teacher_name":"T"}`, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range bad {
		code, _, body := open.httpDo("POST", "/api/classes", tc.ctype, tc.body)
		require.Equal(t, tc.code, code, "%s: %s", tc.name, body)
		var e map[string]string
		require.NoError(t, json.Unmarshal(body, &e), tc.name)
		require.NotEmpty(t, e["error"], tc.name)
	}

	closed := newEnv(t, envOpts{mode: AuthTokens})
	code, _, body = closed.httpDo("POST", "/api/classes", "application/json", `{"title":"x","teacher_name":"Tess"}`)
	require.Equal(t, http.StatusForbidden, code, "%s", body)
}

func TestExchangeInvite(t *testing.T) {
	t.Parallel()
	for _, mode := range []AuthMode{AuthOpen, AuthTokens} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, envOpts{mode: mode})
			invite, err := env.signer.Mint(auth.Claims{Room: "r1", Role: auth.RoleStudent, Participant: "invite", Invite: true, Title: "Biology"}, time.Hour)
			require.NoError(t, err)
			exchange := func(tok, name string) (int, []byte) {
				b, _ := json.Marshal(joinRequest{Token: tok, Name: name})
				code, _, body := env.httpDo("POST", "/api/join", "application/json", string(b))
				return code, body
			}
			code, body := exchange(invite, "  Sam  ")
			require.Equal(t, http.StatusOK, code, "%s", body)
			var res joinResponse
			require.NoError(t, json.Unmarshal(body, &res))
			c, err := env.signer.Verify(res.Token)
			require.NoError(t, err)
			require.Equal(t, "r1", c.Room)
			require.Equal(t, auth.RoleStudent, c.Role)
			require.Equal(t, "Sam", c.Name)
			require.Equal(t, "Biology", c.Title, "the personal token keeps the class title")
			require.False(t, c.Invite)
			require.NotEqual(t, "invite", c.Participant)
			require.LessOrEqual(t, c.Expiry, time.Now().Add(time.Hour).Unix()+1, "never beyond the invite")

			code, body = exchange(invite, "Sue")
			require.Equal(t, http.StatusOK, code)
			var res2 joinResponse
			require.NoError(t, json.Unmarshal(body, &res2))
			c2, err := env.signer.Verify(res2.Token)
			require.NoError(t, err)
			require.NotEqual(t, c.Participant, c2.Participant, "each exchange is a fresh participant")

			_, w := env.join(res.Token)
			require.Equal(t, "Sam", w.You.Name)

			personal := env.token("r1", auth.RoleStudent, "s9", "Sid")
			expired := rawToken(testSecret, auth.Claims{Room: "r1", Role: auth.RoleStudent, Participant: "invite",
				Invite: true, Expiry: time.Now().Unix() - 1})
			for name, tok := range map[string]string{"garbage": "abc", "personal token": personal, "expired": expired,
				"bad signature": invite[:len(invite)-4] + "AAAA"} {
				code, body := exchange(tok, "Sam")
				require.Equal(t, http.StatusUnauthorized, code, "%s: %s", name, body)
			}
			for _, name := range []string{"", "   ", strings.Repeat("x", 65), "a\nb"} {
				code, body := exchange(invite, name)
				require.Equal(t, http.StatusBadRequest, code, "%q: %s", name, body)
			}
		})
	}
}

func TestPagesAndAssets(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	cases := []struct {
		path, ctype, contains string
		code                  int
	}{
		{"/", "text/html; charset=utf-8", "lobby", 200},
		{"/room/abc123", "text/html; charset=utf-8", "class", 200},
		{"/assets/app.js", "text/javascript; charset=utf-8", "lectern", 200},
		{"/assets/app.css", "text/css; charset=utf-8", "margin", 200},
		{"/assets/", "", "", 404},
		{"/assets/missing.js", "", "", 404},
		{"/nope", "", "", 404},
	}
	for _, tc := range cases {
		code, hdr, body := env.httpDo("GET", tc.path, "", "")
		require.Equal(t, tc.code, code, tc.path)
		if tc.code != 200 {
			continue
		}
		require.Equal(t, tc.ctype, hdr.Get("Content-Type"), tc.path)
		require.Contains(t, string(body), tc.contains)
		require.Equal(t, "no-referrer", hdr.Get("Referrer-Policy"))
		require.Equal(t, "nosniff", hdr.Get("X-Content-Type-Options"))
		require.Contains(t, hdr.Get("Content-Security-Policy"), "connect-src 'self';")
		require.NotEmpty(t, hdr.Get("Cache-Control"))
	}
	code, _, _ := env.httpDo("POST", "/", "", "")
	require.Equal(t, http.StatusMethodNotAllowed, code)

	// The policy is fixed: a forged Host header does not get into it.
	for _, host := range []string{"evil.example", "attacker.example:8443"} {
		req, err := http.NewRequest("GET", env.http.URL+"/room/abc123", nil)
		require.NoError(t, err)
		req.Host = host
		resp, err := env.http.Client().Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		require.NotContains(t, csp, host)
		require.Contains(t, csp, "connect-src 'self';")
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	var notReady error
	env := newEnv(t, envOpts{ready: func() error { return notReady }})
	code, _, body := env.httpDo("GET", "/healthz", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", string(body))
	code, _, _ = env.httpDo("GET", "/readyz", "", "")
	require.Equal(t, http.StatusOK, code)

	_, _ = env.join(env.token("m", auth.RoleTeacher, "t", "Tess"))
	_, _ = env.join(env.token("m", auth.RoleStudent, "s", "Sam"))
	code, _, body = env.httpDo("GET", "/metrics", "", "")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{"lectern_classes 1", `lectern_participants{role="student"} 1`,
		`lectern_participants{role="teacher"} 1`, "lectern_ws_connections 2", "lectern_tracks 0",
		"lectern_packets_in_total 0", "lectern_bitrate_in_bps 0", "lectern_bytes_out_total 0",
		"lectern_nacks_served_total", "lectern_keyframe_requests_total", "lectern_publishers", "lectern_subscribers",
		"lectern_packets_forwarded_total", "lectern_packets_dropped_total", "lectern_bytes_in_total", "lectern_bitrate_out_bps",
		"lectern_relays_in 0", "lectern_relays_out 0"} {
		require.Contains(t, string(body), want)
	}

	env2 := newEnv(t, envOpts{ready: func() error { return errors.New("nats disconnected") }})
	code, _, body = env2.httpDo("GET", "/readyz", "", "")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, string(body), "nats disconnected")

	require.NoError(t, env.srv.Shutdown(t.Context()))
	code, _, body = env.httpDo("GET", "/readyz", "", "")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, string(body), "shutting down")
}

func TestBitrates(t *testing.T) {
	t.Parallel()
	b := newBitrates()
	t0 := time.Unix(1000, 0)
	in, out := b.get()
	require.Zero(t, in+out)
	for i := range 10 {
		b.add(t0.Add(time.Duration(i)*2*time.Second), statsBytes(uint64(i)*1000, uint64(i)*4000))
	}
	in, out = b.get()
	require.InDelta(t, 4000.0, in, 0.001)   // 1000 B per 2 s
	require.InDelta(t, 16000.0, out, 0.001) // 4000 B per 2 s
	require.Len(t, b.samples, sampleWindow+1)
}
