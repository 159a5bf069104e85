package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/sfu"
)

// One token holds at most WHEPPerToken sessions: the next POST is a 429
// that says why and when to retry; ending one makes room again. Another
// student's token is not affected.
func TestWHEPSessionsPerToken(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, limits: Limits{WHEPPerToken: 2}})
	tok := env.token("cap", auth.RoleStudent, "v1", "Val")
	first := env.startWHEP(t, "/whep/cap", tok)
	env.startWHEP(t, "/whep/cap", tok)
	_, res := env.newWHEP(t, "/whep/cap", tok, nil, false)
	require.Equal(t, http.StatusTooManyRequests, res.status, res.body)
	require.Contains(t, res.body, "too many WHEP sessions")
	require.NotEmpty(t, res.header.Get("Retry-After"))
	env.startWHEP(t, "/whep/cap", env.token("cap", auth.RoleStudent, "v2", "Vic"))

	first.delete()
	env.startWHEP(t, "/whep/cap", tok)
	require.Equal(t, 3, env.srv.sessions.count())
}

// A WHEP session ends when its token expires: the class sees the viewer
// leave, and the session is gone.
func TestWHEPSessionEndsAtExpiry(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true})
	teacher, _ := env.join(env.token("wexp", auth.RoleTeacher, "t", "Tess"))
	// exp is in whole seconds: the token lasts 3 to 4 s, time to connect
	// on a loaded machine.
	tok, err := env.signer.Mint(auth.Claims{Room: "wexp", Role: auth.RoleStudent, Participant: "v1"}, 4*time.Second)
	require.NoError(t, err)
	env.startWHEP(t, "/whep/wexp", tok)
	teacher.wait("viewer joined", func(m envelope) bool {
		return m.Type == typeParticipantJoined && strings.Contains(string(m.Data), `"v1"`)
	})
	require.Eventually(t, func() bool {
		return teacher.count(typeParticipantLeft) == 1 && env.srv.sessions.count() == 0
	}, 6*time.Second, 10*time.Millisecond, "the session outlived its token")
}

// A websocket is closed with 4001 "token expired" when its token expires,
// even while the client keeps sending; nothing it sends after is relayed.
func TestTokenExpiresDuringConnection(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	teacher, _ := env.join(env.token("exp", auth.RoleTeacher, "t", "Tess"))
	tok, err := env.signer.Mint(auth.Claims{Room: "exp", Role: auth.RoleStudent, Participant: "s1", Name: "Sam"}, 3*time.Second)
	require.NoError(t, err)
	student, _ := env.join(tok)
	student.send(typeChat, "", chatData{Text: "before"})
	teacher.wait("chat", func(m envelope) bool { return m.Type == typeChat })
	require.Equal(t, closeUnauthorized, student.closeCode())
	require.Equal(t, ErrTokenExpired.Error(), student.reason)
	require.Equal(t, 1, teacher.count(typeChat))
	teacher.wait("student left", func(m envelope) bool { return m.Type == typeParticipantLeft })
}

// A token whose nbf is in the future is refused everywhere: the
// websocket, WHEP and /api/join.
func TestTokenNotBefore(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	now := time.Now().Unix()
	early := rawToken(testSecret, auth.Claims{Room: "nbf", Role: auth.RoleStudent, Participant: "s1", Name: "Sam",
		NotBefore: now + 60, Expiry: now + 3600})
	c := env.dial()
	c.send(typeJoin, "", joinData{Token: early})
	require.Equal(t, closeUnauthorized, c.closeCode())

	res := env.mediaReq(http.MethodPost, "/whep/nbf", early, "application/sdp", "v=0\r\n")
	require.Equal(t, http.StatusUnauthorized, res.status, res.body)

	invite := rawToken(testSecret, auth.Claims{Room: "nbf", Role: auth.RoleStudent, Participant: "invite", Invite: true,
		NotBefore: now + 60, Expiry: now + 3600})
	code, _, body := env.httpDo("POST", "/api/join", "application/json", fmt.Sprintf(`{"token":%q,"name":"Sam"}`, invite))
	require.Equal(t, http.StatusUnauthorized, code, string(body))

	ok := rawToken(testSecret, auth.Claims{Room: "nbf", Role: auth.RoleStudent, Participant: "s1", Name: "Sam",
		NotBefore: now - 1, Expiry: now + 3600})
	env.join(ok)
}

// Each participant's chat is rate limited: beyond the burst a message is
// answered rate_limited, not relayed, and the connection stays open.
func TestChatRatePerParticipant(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{limits: Limits{ChatRate: 1, ChatBurst: 3}})
	teacher, _ := env.join(env.token("cr", auth.RoleTeacher, "t", "Tess"))
	student, _ := env.join(env.token("cr", auth.RoleStudent, "s1", "Sam"))
	start := time.Now()
	for i := range 10 {
		student.send(typeChat, strconv.Itoa(i), chatData{Text: fmt.Sprintf("msg %d", i)})
	}
	e := student.waitError("9")
	require.Equal(t, "rate_limited", e.Code)
	require.Eventually(t, func() bool { return student.count(typeError)+teacher.count(typeChat) == 10 }, waitFor, 5*time.Millisecond)
	refilled := int(time.Since(start).Seconds()) + 1
	require.LessOrEqual(t, teacher.count(typeChat), 3+refilled, "a burst of 3, plus one a second")
	require.GreaterOrEqual(t, student.count(typeError), 10-3-refilled)
	require.True(t, student.isOpen())
}

// A class's chat is bounded as a whole: ten students within their own
// limits cannot make everyone receive more than the class's budget, and
// the teacher can still speak.
func TestChatRatePerClass(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{limits: Limits{ChatRate: 5, ChatBurst: 5, ClassChatRate: 5}})
	teacher, _ := env.join(env.token("cc", auth.RoleTeacher, "t", "Tess"))
	start := time.Now()
	var students []*wsClient
	for i := range 10 {
		s, _ := env.join(env.token("cc", auth.RoleStudent, fmt.Sprintf("s%d", i), "Sam"))
		students = append(students, s)
	}
	for _, s := range students {
		for j := range 5 {
			s.send(typeChat, strconv.Itoa(j), chatData{Text: "spam"})
		}
	}
	// Every message is either relayed to the teacher or refused.
	require.Eventually(t, func() bool {
		n := teacher.count(typeChat)
		for _, s := range students {
			n += s.count(typeError)
		}
		return n == 50
	}, waitFor, 5*time.Millisecond)
	elapsed := time.Since(start).Seconds()
	budget := 10 + int(5*elapsed) + 1 // a burst of twice the rate, plus the refill
	require.LessOrEqual(t, teacher.count(typeChat), budget)
	require.GreaterOrEqual(t, teacher.count(typeChat), 10)

	// The students' flood does not silence the teacher.
	teacher.send(typeChat, "t", chatData{Text: "quiet please"})
	students[0].wait("teacher's chat", func(m envelope) bool {
		return m.Type == typeChat && strings.Contains(string(m.Data), "quiet please")
	})
}

// A participant closed for flooding (4008) cannot rejoin at once: the
// join is closed with 4008 and a reason saying to wait; after the
// cooldown it may.
func TestFloodCooldown(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{limits: Limits{FloodCooldown: 1500 * time.Millisecond}})
	tok := env.token("fc", auth.RoleStudent, "s1", "Sam")
	bad, _ := env.join(tok)
	for range rateLimit + 10 {
		if bad.ws.WriteMessage(1, []byte(`{"type":"hand","data":{"raised":true}}`)) != nil {
			break
		}
	}
	require.Equal(t, closeRateLimited, bad.closeCode())
	again := env.dial()
	again.send(typeJoin, "", joinData{Token: tok})
	require.Equal(t, closeRateLimited, again.closeCode())
	require.Contains(t, again.reason, "wait before joining again")
	require.Eventually(t, func() bool { return env.srv.floods.wait("s1") == 0 }, 3*time.Second, 20*time.Millisecond)
	env.join(tok)
}

// Chat refuses NUL, other control characters and bidirectional
// overrides and isolates; line breaks, tabs and right-to-left scripts
// are fine.
func TestChatRefusesControlAndBidi(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{limits: Limits{ChatBurst: 20, ClassChatRate: 100}})
	teacher, _ := env.join(env.token("cb", auth.RoleTeacher, "t", "Tess"))
	for i, bad := range []string{"a\x00b", "bell\x07", "esc\x1b[31m", "c1\u0085", "evil\u202egnp.exe", "iso\u2066x\u2069", "\u202a"} {
		rid := fmt.Sprintf("bad%d", i)
		teacher.send(typeChat, rid, chatData{Text: bad})
		require.Equal(t, "bad_request", teacher.waitError(rid).Code, "%q", bad)
	}
	for _, good := range []string{"two\nlines", "tab\there", "שלום עולם", "مرحبا"} {
		teacher.send(typeChat, "", chatData{Text: good})
		teacher.wait(good, func(m envelope) bool {
			var c chatMsg
			return m.Type == typeChat && json.Unmarshal(m.Data, &c) == nil && c.Text == good
		})
	}
	require.Zero(t, teacher.count(typeChat)-4)
}

// dialSmallBuffer dials with a 4 KB socket receive buffer, so a client
// that stops reading holds up the server's writes soon.
func (e *testEnv) dialSmallBuffer() *wsClient {
	nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	return e.dialWith(&websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: waitFor})
}

// A client that cannot keep up with a busy chat is not closed: chat is
// dropped for it, and what matters still reaches it once it reads.
func TestSlowReaderKeepsConnectionThroughChat(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{limits: Limits{ChatRate: 1000, ChatBurst: 1000, ClassChatRate: 100000}})
	slow := env.dialSmallBuffer()
	slow.send(typeJoin, "", joinData{Token: env.token("sr", auth.RoleStudent, "slow", "Slo")})
	slow.waitType(typeWelcome)
	// A slow network: small buffers on both ends of the socket.
	conns := env.srv.connSnapshot() // the slow client's alone so far
	require.Len(t, conns, 1)
	require.NoError(t, conns[0].ws.NetConn().(*net.TCPConn).SetWriteBuffer(4096))
	slow.pause()
	text := strings.Repeat("€", maxChatRunes) // 3 KB a message
	var senders []*wsClient
	for i := range 12 {
		s, _ := env.join(env.token("sr", auth.RoleStudent, fmt.Sprintf("s%d", i), "Sam"))
		senders = append(senders, s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for env.srv.chatDropped.Load() < int64(sendQueueLen) && time.Now().Before(deadline) {
		for _, s := range senders {
			s.send(typeChat, "", chatData{Text: text})
		}
		time.Sleep(25 * time.Millisecond) // 40 a second each, under rateLimit
	}
	require.GreaterOrEqual(t, env.srv.chatDropped.Load(), int64(sendQueueLen), "the slow reader's queue filled")
	slow.resume()
	env.join(env.token("sr", auth.RoleStudent, "late", "Lee"))
	slow.wait("late joiner", func(m envelope) bool {
		return m.Type == typeParticipantJoined && strings.Contains(string(m.Data), `"late"`)
	})
	require.True(t, slow.isOpen())
}

// A WHEP session whose client goes away before it connects, and is
// deleted, is ordinary: it logs no warning (pion's teardown messages are
// debug lines).
func TestAbandonedWHEPSessionLogsNoWarning(t *testing.T) {
	t.Parallel()
	var logs syncLog
	log := zerolog.New(&logs).Level(zerolog.WarnLevel)
	e, err := sfu.NewEngine(sfu.Config{TCPPort: -1, PublicIP: "127.0.0.1", Logger: log})
	require.NoError(t, err)
	signer, err := auth.NewSigner([]byte(testSecret))
	require.NoError(t, err)
	// The audit log writes at every level (its join and leave are no
	// warnings): it goes elsewhere here.
	srv, err := New(Options{Engine: e, Signer: signer, Logger: log, Registry: prometheus.NewRegistry(),
		Audit: NewAuditLog(zerolog.Nop())})
	require.NoError(t, err)
	env := newEnvFor(t, srv, signer)
	t.Cleanup(func() {
		require.NoError(t, srv.Shutdown(context.Background()))
		env.http.Close()
		_ = e.Close()
	})
	tok := env.token("quiet", auth.RoleStudent, "v1", "")
	v, res := env.newWHEP(t, "/whep/quiet", tok, nil, false)
	require.Equal(t, http.StatusCreated, res.status, res.body)
	_ = v.pc.Close()
	time.Sleep(2500 * time.Millisecond) // ICE tries, and finds nobody
	require.Equal(t, http.StatusOK, env.mediaReq(http.MethodDelete, v.loc, tok, "", "").status)
	require.Eventually(t, func() bool { return env.srv.sessions.count() == 0 }, waitFor, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.Empty(t, logs.String())
}

// syncLog collects log lines written from several goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A WHIP publisher's session ends when its token expires: the class's
// students are told the teacher is no longer live.
func TestWHIPSessionEndsAtExpiry(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, tm: shortReady})
	student, _ := env.join(env.token("pexp", auth.RoleStudent, "s1", "Sam"))
	tok, err := env.signer.Mint(auth.Claims{Room: "pexp", Role: auth.RoleTeacher, Participant: "t", Name: "Tess"}, 4*time.Second)
	require.NoError(t, err)
	pub := env.startWHIP(t, "pexp", tok, whipOpts{})
	pub.send()
	student.wait("live", func(m envelope) bool { return m.Type == typeLive && strings.Contains(string(m.Data), "true") })
	student.wait("not live", func(m envelope) bool { return m.Type == typeLive && strings.Contains(string(m.Data), "false") })
	require.Eventually(t, func() bool { return env.srv.sessions.count() == 0 }, waitFor, 10*time.Millisecond)
}
