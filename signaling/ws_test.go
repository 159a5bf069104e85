package signaling

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"lectern/auth"
)

func TestJoinRefused(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{tm: func(tm *timings) { tm.join = 300 * time.Millisecond }})
	now := time.Now().Unix()
	expired := rawToken(testSecret, auth.Claims{Room: "r", Role: auth.RoleStudent, Participant: "p", Expiry: now - 10})
	badSig := rawToken("another secret, another secret, !!", auth.Claims{Room: "r", Role: auth.RoleStudent, Participant: "p", Expiry: now + 600})
	invite, err := env.signer.Mint(auth.Claims{Room: "r", Role: auth.RoleStudent, Participant: "invite", Invite: true}, time.Hour)
	require.NoError(t, err)
	student := env.token("r", auth.RoleStudent, "s1", "Sam")
	operatorAll := env.token(auth.AllRooms, auth.RoleOperator, "op", "Ops")

	cases := []struct {
		name string
		msgs []string
		code int
	}{
		{"bad signature", []string{join(badSig, "")}, closeUnauthorized},
		{"expired", []string{join(expired, "")}, closeUnauthorized},
		{"malformed token", []string{join("not-a-token", "")}, closeUnauthorized},
		{"invite token", []string{join(invite, "")}, closeUnauthorized},
		{"other class", []string{join(student, "other")}, closeForbidden},
		{"operator naming no class", []string{join(operatorAll, "")}, closeForbidden},
		{"no join in time", nil, closeUnauthorized},
		{"only garbage then no join", []string{`{{{`, `{"type":"chat","data":{"text":"hi"}}`}, closeUnauthorized},
		{"oversized message", []string{`{"type":"chat","data":{"text":"` + strings.Repeat("x", 70<<10) + `"}}`}, websocket.CloseMessageTooBig},
		{"flood", repeat(`{"type":"nonsense"}`, 60), closeRateLimited},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := env.dial()
			c.t = t
			for _, m := range tc.msgs {
				// The server may close before the last of them: that is the point.
				_ = c.ws.WriteMessage(websocket.TextMessage, []byte(m))
			}
			require.Equal(t, tc.code, c.closeCode())
			require.Zero(t, c.count(typeWelcome))
		})
	}
}

func join(token, room string) string {
	return fmt.Sprintf(`{"type":"join","data":{"token":%q,"room":%q}}`, token, room)
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestJoinWelcome(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	teacher, w := env.join(env.token("math", auth.RoleTeacher, "t1", "Tess"))
	require.Equal(t, "math", w.Room)
	require.Equal(t, participantInfo{ID: "t1", Name: "Tess", Role: "teacher"}, w.You)
	require.Len(t, w.Participants, 1)
	require.False(t, w.Live)
	require.Empty(t, w.Streams)

	// A room named explicitly and covered by the token is fine.
	c := env.dial()
	c.sendRaw([]byte(join(env.token("math", auth.RoleStudent, "s1", "Sam"), "math")))
	var w2 welcomeData
	c.decode(c.waitType(typeWelcome), &w2)
	require.Len(t, w2.Participants, 2)
	require.Equal(t, "t1", w2.Participants[0].ID, "listed in join order")
	var joined participantInfo
	teacher.decode(teacher.waitType(typeParticipantJoined), &joined)
	require.Equal(t, "s1", joined.ID)

	// Requests before join, and a second join, are refused but keep the line.
	c3 := env.dial()
	c3.send(typeChat, "early", chatData{Text: "hi"})
	require.Equal(t, "forbidden", c3.waitError("early").Code)
	c3.sendRaw([]byte(join(env.token("math", auth.RoleStudent, "s2", "Sue"), "")))
	c3.waitType(typeWelcome)
	c3.send(typeJoin, "again", joinData{Token: "x"})
	require.Equal(t, "conflict", c3.waitError("again").Code)
	require.True(t, c3.isOpen())

	// leave closes with 1000 and the others see participant_left.
	c3.send(typeLeave, "", struct{}{})
	require.Equal(t, websocket.CloseNormalClosure, c3.closeCode())
	teacher.wait("s2 left", func(m envelope) bool {
		return m.Type == typeParticipantLeft && strings.Contains(string(m.Data), `"s2"`)
	})
}

func TestChatReachesEveryone(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	teacher, _ := env.join(env.token("c", auth.RoleTeacher, "t", "Tess"))
	s1, _ := env.join(env.token("c", auth.RoleStudent, "s1", "Sam"))
	s2, _ := env.join(env.token("c", auth.RoleStudent, "s2", "Sue"))
	op, _ := env.join(env.token("c", auth.RoleOperator, "op", "Ops"))
	all := []*wsClient{teacher, s1, s2, op}
	for i, c := range all {
		c.send(typeChat, "", chatData{Text: fmt.Sprintf("hello %d", i)})
	}
	for _, c := range all {
		for i := range all {
			text := fmt.Sprintf("hello %d", i)
			c.wait(text, func(m envelope) bool { return m.Type == typeChat && strings.Contains(string(m.Data), text) })
		}
	}
	var msg chatMsg
	teacher.decode(teacher.wait("chat from s1", func(m envelope) bool {
		return m.Type == typeChat && strings.Contains(string(m.Data), "hello 1")
	}), &msg)
	require.Equal(t, "s1", msg.ID)
	require.Equal(t, "Sam", msg.Name)
	require.InDelta(t, time.Now().UnixMilli(), msg.TS, 10000)

	// A latecomer gets the history in its welcome.
	_, w := env.join(env.token("c", auth.RoleStudent, "s3", "Sid"))
	require.Len(t, w.Chat, 4)
}

func TestOperatorJoinNeedsRoom(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	teacher, _ := env.join(env.token("c", auth.RoleTeacher, "t", "Tess"))
	op := env.dial()
	op.sendRaw([]byte(join(env.token(auth.AllRooms, auth.RoleOperator, "op", "Ops"), "c")))
	var w welcomeData
	op.decode(op.waitType(typeWelcome), &w)
	require.Equal(t, "operator", w.You.Role)
	require.Len(t, w.Participants, 1, "operators are not listed")
	s, sw := env.join(env.token("c", auth.RoleStudent, "s1", "Sam"))
	for _, p := range sw.Participants {
		require.NotEqual(t, "op", p.ID)
	}

	// The operator moderates: invite, and is refused publishing.
	op.send(typeInvite, "inv", participantRef{ID: "s1"})
	s.wait("invited", func(m envelope) bool {
		return m.Type == typeParticipantUpdated && strings.Contains(string(m.Data), `"can_publish":true`)
	})
	op.send(typePublish, "pub", publishData{Stream: "o1", Label: labelCamera, SDP: "v=0"})
	require.Equal(t, "forbidden", op.waitError("pub").Code)
	op.send(typeChat, "", chatData{Text: "ops here"})
	teacher.wait("ops chat", func(m envelope) bool { return m.Type == typeChat && strings.Contains(string(m.Data), "ops here") })
	require.Zero(t, teacher.count(typeParticipantJoined)-1, "only the student's join was announced")
}

func TestHands(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	teacher, _ := env.join(env.token("h", auth.RoleTeacher, "t", "Tess"))
	s1, _ := env.join(env.token("h", auth.RoleStudent, "s1", "Sam"))
	s2, _ := env.join(env.token("h", auth.RoleStudent, "s2", "Sue"))

	s1.send(typeHand, "", handData{Raised: ptr(true)})
	raised := func(m envelope) bool {
		return m.Type == typeParticipantUpdated && strings.Contains(string(m.Data), `"id":"s1"`) &&
			strings.Contains(string(m.Data), `"hand":true`)
	}
	lowered := func(m envelope) bool {
		return m.Type == typeParticipantUpdated && strings.Contains(string(m.Data), `"id":"s1"`) &&
			strings.Contains(string(m.Data), `"hand":false`)
	}
	for _, c := range []*wsClient{teacher, s1, s2} {
		c.wait("hand raised", raised)
	}
	_, w := env.join(env.token("h", auth.RoleStudent, "s3", "Sid"))
	require.True(t, w.Participants[1].Hand, "a latecomer sees the raised hand")

	s2.send(typeLowerHand, "s2-lower", participantRef{ID: "s1"})
	require.Equal(t, "forbidden", s2.waitError("s2-lower").Code)
	teacher.send(typeHand, "t-hand", handData{Raised: ptr(true)})
	require.Equal(t, "forbidden", teacher.waitError("t-hand").Code)
	teacher.send(typeLowerHand, "nobody", participantRef{ID: "ghost"})
	require.Equal(t, "not_found", teacher.waitError("nobody").Code)

	teacher.send(typeLowerHand, "", participantRef{ID: "s1"})
	for _, c := range []*wsClient{teacher, s1, s2} {
		c.wait("hand lowered", lowered)
	}
	s1.send(typeHand, "", handData{Raised: ptr(true)})
	s1.send(typeHand, "", handData{Raised: ptr(false)})
	require.Eventually(t, func() bool { return s2.count(typeParticipantUpdated) == 4 }, waitFor, 5*time.Millisecond)
}

func ptr[T any](v T) *T { return &v }

func TestStudentPublishNeedsInvite(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{}) // no media engine: publishing stops at the permission check
	teacher, _ := env.join(env.token("p", auth.RoleTeacher, "t", "Tess"))
	s1, _ := env.join(env.token("p", auth.RoleStudent, "s1", "Sam"))

	s1.send(typePublish, "p1", publishData{Stream: "cam", Label: labelCamera, SDP: "v=0"})
	require.Equal(t, "forbidden", s1.waitError("p1").Code)

	teacher.send(typeInvite, "", participantRef{ID: "s1"})
	s1.wait("invited", func(m envelope) bool {
		return m.Type == typeParticipantUpdated && strings.Contains(string(m.Data), `"can_publish":true`)
	})
	s1.send(typePublish, "p2", publishData{Stream: "scr", Label: labelScreen, SDP: "v=0"})
	require.Equal(t, "forbidden", s1.waitError("p2").Code, "students publish only a camera")
	s1.send(typePublish, "p3", publishData{Stream: "cam", Label: labelCamera, SDP: "v=0"})
	e := s1.waitError("p3")
	require.Equal(t, "internal", e.Code, "past the permission check, the missing engine answers")
	require.Equal(t, ErrNoEngine.Error(), e.Message)

	teacher.send(typeRevoke, "", participantRef{ID: "s1"})
	s1.wait("revoked", func(m envelope) bool {
		return m.Type == typeParticipantUpdated && strings.Contains(string(m.Data), `"can_publish":false`)
	})
	s1.send(typePublish, "p4", publishData{Stream: "cam", Label: labelCamera, SDP: "v=0"})
	require.Equal(t, "forbidden", s1.waitError("p4").Code)

	// Unknown streams in unpublish, answer and ice are not_found.
	s1.send(typeUnpublish, "u", streamRef{Stream: "cam"})
	require.Equal(t, "not_found", s1.waitError("u").Code)
	s1.send(typeAnswer, "a", answerData{Stream: "t:cam", SDP: "v=0"})
	require.Equal(t, "not_found", s1.waitError("a").Code)
	s1.send(typeICE, "i", iceData{Stream: "t:cam"})
	require.Equal(t, "not_found", s1.waitError("i").Code)
}

func TestRemove(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	teacher, _ := env.join(env.token("rm", auth.RoleTeacher, "t", "Tess"))
	tok := env.token("rm", auth.RoleStudent, "s1", "Sam")
	s1, _ := env.join(tok)
	s2, _ := env.join(env.token("rm", auth.RoleStudent, "s2", "Sue"))

	s2.send(typeRemove, "x", participantRef{ID: "s1"})
	require.Equal(t, "forbidden", s2.waitError("x").Code)
	teacher.send(typeRemove, "self", participantRef{ID: "t"})
	require.Equal(t, "forbidden", teacher.waitError("self").Code)

	teacher.send(typeRemove, "", participantRef{ID: "s1"})
	var why reasonData
	s1.decode(s1.waitType(typeRemoved), &why)
	require.NotEmpty(t, why.Reason)
	require.Equal(t, closeForbidden, s1.closeCode())
	s2.wait("s1 left", func(m envelope) bool {
		return m.Type == typeParticipantLeft && strings.Contains(string(m.Data), `"s1"`)
	})

	again := env.dial()
	again.sendRaw([]byte(join(tok, "")))
	require.Equal(t, closeForbidden, again.closeCode())
	require.True(t, s2.isOpen())
}

func TestBanOutlivesClass(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	teacher, _ := env.join(env.token("gone", auth.RoleTeacher, "t", "Tess"))
	tok := env.token("gone", auth.RoleStudent, "s1", "Sam")
	s1, _ := env.join(tok)
	teacher.send(typeRemove, "", participantRef{ID: "s1"})
	require.Equal(t, closeForbidden, s1.closeCode())
	teacher.send(typeLeave, "", nil)
	require.Equal(t, websocket.CloseNormalClosure, teacher.closeCode())
	require.Eventually(t, func() bool { return env.srv.hub.stats().classes == 0 }, waitFor, 5*time.Millisecond)
	again := env.dial()
	again.sendRaw([]byte(join(tok, "")))
	require.Equal(t, closeForbidden, again.closeCode())
}

func TestReconnectReplaces(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	teacher, _ := env.join(env.token("re", auth.RoleTeacher, "t", "Tess"))
	tok := env.token("re", auth.RoleStudent, "s1", "Sam")
	old, _ := env.join(tok)
	old.send(typeHand, "", handData{Raised: ptr(true)})
	teacher.wait("hand", func(m envelope) bool {
		return m.Type == typeParticipantUpdated && strings.Contains(string(m.Data), `"hand":true`)
	})
	fresh, w := env.join(tok)
	require.Equal(t, closeReplaced, old.closeCode())
	require.Equal(t, ErrReplaced.Error(), old.reason, "4009 says why")
	require.True(t, w.You.Hand, "the participant's state survives the new connection")
	fresh.send(typeChat, "", chatData{Text: "still here"})
	teacher.wait("chat", func(m envelope) bool { return m.Type == typeChat && strings.Contains(string(m.Data), "still here") })
	require.Zero(t, teacher.count(typeParticipantLeft))
	require.Equal(t, 2, len(w.Participants))
}

// One client sending garbage, oversized messages and floods never
// disturbs another client's chat.
func TestBadClientDoesNotDisturb(t *testing.T) {
	t.Parallel()
	// Chat limits that let the good client's 20 messages through.
	env := newEnv(t, envOpts{limits: Limits{ChatBurst: 25, ClassChatRate: 100}})
	teacher, _ := env.join(env.token("b", auth.RoleTeacher, "t", "Tess"))
	good, _ := env.join(env.token("b", auth.RoleStudent, "g", "Gil"))
	bad, _ := env.join(env.token("b", auth.RoleStudent, "x", "Xan"))
	garbage := []string{`{`, `[]`, `{"type":"chat","data":{"text":5}}`, `{"type":"publish","data":{}}`,
		`{"type":"ice","data":{"stream":"nope","candidate":{"candidate":"garbage"}}}`, "\x00\xff", `{"type":"answer","data":{"stream":"t:x","sdp":"zz"}}`}
	for _, g := range garbage {
		bad.sendRaw([]byte(g))
	}
	require.Eventually(t, func() bool { return bad.count(typeError) == len(garbage) }, waitFor, 5*time.Millisecond)
	require.True(t, bad.isOpen())
	go func() { // the flood: the sender is closed with 4008
		for i := 0; i < 200; i++ {
			if bad.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"chat","data":{"text":"spam"}}`)) != nil {
				return
			}
		}
	}()
	for i := 0; i < 20; i++ {
		good.send(typeChat, "", chatData{Text: fmt.Sprintf("good %d", i)})
	}
	require.Equal(t, closeRateLimited, bad.closeCode())
	require.Equal(t, ErrRateLimited.Error(), bad.reason, "4008 says why")
	for i := 0; i < 20; i++ {
		text := fmt.Sprintf(`"good %d"`, i)
		teacher.wait(text, func(m envelope) bool { return m.Type == typeChat && strings.Contains(string(m.Data), text) })
	}
	require.True(t, good.isOpen())
	require.True(t, teacher.isOpen())
	require.LessOrEqual(t, teacher.count(typeChat)-20, rateLimit, "at most one window of spam got through")
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	h := http.Header{"Origin": {"http://evil.example"}}
	_, resp, err := websocket.DefaultDialer.Dial(env.ws, h)
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	_ = resp.Body.Close()
	h = http.Header{"Origin": {env.http.URL}}
	ws, resp, err := websocket.DefaultDialer.Dial(env.ws, h)
	require.NoError(t, err)
	_ = resp.Body.Close()
	_ = ws.Close()
}

func TestShutdownTellsClients(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	teacher, _ := env.join(env.token("s", auth.RoleTeacher, "t", "Tess"))
	student, _ := env.join(env.token("s", auth.RoleStudent, "s1", "Sam"))
	idle := env.dial()
	require.NoError(t, env.srv.Shutdown(t.Context()))
	for _, c := range []*wsClient{teacher, student} {
		c.waitType(typeShutdown)
		require.Equal(t, websocket.CloseGoingAway, c.closeCode())
	}
	require.Equal(t, websocket.CloseGoingAway, idle.closeCode())
	_, resp, err := websocket.DefaultDialer.Dial(env.ws, nil)
	require.Error(t, err)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	_ = resp.Body.Close()
	code, _, _ := env.httpDo("GET", "/readyz", "", "")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Zero(t, env.srv.connCount())
}

func TestKeepalive(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{tm: func(tm *timings) {
		tm.ping = 50 * time.Millisecond
		tm.read = 300 * time.Millisecond
	}})
	// This client reads, so gorilla answers the pings: it stays.
	alive, _ := env.join(env.token("k", auth.RoleTeacher, "t", "Tess"))
	// This one stops reading after its welcome: no pongs, it is dropped.
	ws, resp, err := websocket.DefaultDialer.Dial(env.ws, nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	defer ws.Close()
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte(join(env.token("k", auth.RoleStudent, "s", "Sam"), ""))))
	_, _, err = ws.ReadMessage()
	require.NoError(t, err)
	alive.wait("silent student dropped", func(m envelope) bool { return m.Type == typeParticipantLeft })
	require.True(t, alive.isOpen())
	require.Eventually(t, func() bool { return env.srv.connCount() == 1 }, waitFor, 5*time.Millisecond)
}

func TestSlowConsumerIsClosed(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{})
	c := newConn(env.srv, nil)
	msg := encode(typeChat, "", chatMsg{Text: "x"})
	for range sendQueueLen {
		c.enqueue(msg)
	}
	require.False(t, c.closed.Load(), "a full queue is fine")
	c.enqueue(msg)
	require.True(t, c.closed.Load(), "one more and the client is closed, never waited for")
	require.ErrorIs(t, c.closeErr, ErrSlowConsumer)
	c.enqueue(msg) // after close: dropped, no panic
	require.Len(t, c.send.take(), sendQueueLen)
}
