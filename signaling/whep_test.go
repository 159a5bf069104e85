package signaling

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/sfu"
)

// TestWHEPFollowsTeacher: a WHEP viewer that connects before the teacher
// is live is listed as a student, gets media once a WHIP publisher goes
// live, and again after that publisher reconnects (DELETE and a new POST),
// with no new request. Across the reconnection the viewer sees one RTP
// stream: same SSRC, no sequence gap, timestamps that keep increasing,
// and a keyframe first.
func TestWHEPFollowsTeacher(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, tm: shortReady})
	view := env.startWHEP(t, "/whep/follow", env.token("follow", auth.RoleStudent, "v1", ""))
	student, w := env.join(env.token("follow", auth.RoleStudent, "s1", "Sam"))
	require.Contains(t, w.Participants, participantInfo{ID: "v1", Name: whepViewerName, Role: "student"})

	teacherTok := env.token("follow", auth.RoleTeacher, "t", "Tess")
	pub := env.startWHIP(t, "follow", teacherTok, whipOpts{})
	pub.send()
	view.waitMedia(20, kindVideo, kindAudio)
	pub.delete()
	student.wait("not live", func(m envelope) bool { return m.Type == typeLive && strings.Contains(string(m.Data), "false") })
	first := len(view.packets(kindVideo))

	pub = env.startWHIP(t, "follow", teacherTok, whipOpts{})
	pub.send()
	view.waitMedia(20, kindVideo, kindAudio)

	for _, kind := range []webrtc.RTPCodecType{kindVideo, kindAudio} {
		pkts := view.packets(kind)
		requireOneStream(t, pkts)
	}
	video := view.packets(kindVideo)
	require.True(t, sfu.IsKeyframe(webrtc.MimeTypeVP8, video[first].Payload), "the new source starts on a keyframe")
	student.mu.Lock()
	for _, m := range student.msgs {
		require.False(t, m.Type == typeParticipantLeft && strings.Contains(string(m.Data), `"v1"`), "the viewer stayed in the class")
	}
	student.mu.Unlock()
}

// requireOneStream: one SSRC, consecutive sequence numbers, timestamps
// that never go back.
func requireOneStream(t *testing.T, pkts []rtp.Packet) {
	t.Helper()
	require.NotEmpty(t, pkts)
	for i := 1; i < len(pkts); i++ {
		p, q := pkts[i-1], pkts[i]
		require.Equal(t, p.SSRC, q.SSRC, "SSRC changed at %d", i)
		require.Equal(t, p.SequenceNumber+1, q.SequenceNumber, "sequence gap at %d", i)
		require.GreaterOrEqual(t, int32(q.Timestamp-p.Timestamp), int32(0), "timestamp went back at %d", i)
	}
}

// TestWHEPScreen: ?video=screen shows the teacher's screen share, with
// the teacher's microphone from the camera stream.
func TestWHEPScreen(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, tm: shortReady})
	teacherTok := env.token("scr", auth.RoleTeacher, "t", "Tess")
	teacher, _ := env.join(teacherTok)
	pub := env.startWHIP(t, "scr", teacherTok, whipOpts{})
	pub.send()
	publishMedia(t, teacher, "scr", labelScreen, "video")
	view := env.startWHEP(t, "/whep/scr?video=screen", env.token("scr", auth.RoleStudent, "v", "Vic"))
	view.waitMedia(20, kindVideo, kindAudio)
	// The page's screen frames are 12 bytes; the WHIP camera's are 12 too
	// but carry a timestamp step of 1800 instead of 960.
	video := view.packets(kindVideo)
	last := video[len(video)-1]
	prev := video[len(video)-2]
	require.Equal(t, uint32(960), last.Timestamp-prev.Timestamp, "video is the screen share")
}

// TestWHEPViewerRemoved: a WHEP viewer obeys the class's rules: removed
// by the teacher, its session ends and it cannot come back.
func TestWHEPViewerRemoved(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, tm: shortReady})
	teacher, _ := env.join(env.token("ban", auth.RoleTeacher, "t", "Tess"))
	vtok := env.token("ban", auth.RoleStudent, "v", "Vic")
	view := env.startWHEP(t, "/whep/ban", vtok)
	teacher.wait("viewer joined", func(m envelope) bool {
		return m.Type == typeParticipantJoined && strings.Contains(string(m.Data), `"id":"v"`)
	})
	teacher.send(typeRemove, "", participantRef{ID: "v"})
	teacher.wait("viewer left", func(m envelope) bool {
		return m.Type == typeParticipantLeft && strings.Contains(string(m.Data), `"id":"v"`)
	})
	require.Eventually(t, func() bool {
		return env.srv.sessions.count() == 0 && env.engine.Stats().Subscribers == 0
	}, waitFor, 10*time.Millisecond)
	require.Equal(t, http.StatusNotFound, env.mediaReq(http.MethodDelete, view.loc, vtok, "", "").status)
	_, res := env.newWHEP(t, "/whep/ban", vtok, nil, false)
	require.Equal(t, http.StatusForbidden, res.status, res.body)
}

// TestWHIPWHEPErrors: every error status, each with a short reason, none
// of which disturbs the live class (its WHEP viewer and page student keep
// receiving, nothing is closed).
func TestWHIPWHEPErrors(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, tm: shortReady})
	teacherTok := env.token("err", auth.RoleTeacher, "t", "Tess")
	studentTok := env.token("err", auth.RoleStudent, "s1", "Sam")
	pub := env.startWHIP(t, "err", teacherTok, whipOpts{})
	pub.send()
	view := env.startWHEP(t, "/whep/err", env.token("err", auth.RoleStudent, "v", "Vic"))
	view.waitMedia(10, kindVideo, kindAudio)
	student, w := env.join(studentTok)
	require.Len(t, w.Streams, 1)
	rs := newReceiver(t, student)
	rs.accept(w.Streams[0].Stream)

	goodPub := offerFrom(t, clientAPI(), webrtc.RTPTransceiverDirectionSendonly, kindVideo, kindAudio)
	goodView := offerFrom(t, clientAPI(), webrtc.RTPTransceiverDirectionRecvonly, kindVideo, kindAudio)
	pcmuPub := offerFrom(t, apiWith(t, codecPCMU), webrtc.RTPTransceiverDirectionSendonly, kindAudio)
	h264View := offerFrom(t, apiWith(t, codecH264, codecOpus), webrtc.RTPTransceiverDirectionRecvonly, kindVideo, kindAudio)
	pcmuView := offerFrom(t, apiWith(t, codecPCMU), webrtc.RTPTransceiverDirectionRecvonly, kindAudio)
	otherRoom := env.token("other", auth.RoleTeacher, "t", "Tess")
	const sdp, frag = "application/sdp", "application/trickle-ice-sdpfrag"
	goodFrag := "a=ice-ufrag:uuuu\r\na=ice-pwd:pppppppppppppppppppppp\r\n"

	for _, tc := range []struct {
		name, method, path, token, ctype, body string
		hdr                                    []string
		status                                 int
		says                                   string
	}{
		{"whip no token", "POST", "/whip/err", "", sdp, goodPub, nil, 401, "Bearer"},
		{"whip bad token", "POST", "/whip/err", "not.a.token", sdp, goodPub, nil, 401, "invalid"},
		{"whip invite", "POST", "/whip/err", mustInvite(t, env, "err"), sdp, goodPub, nil, 401, "invite"},
		{"whip student", "POST", "/whip/err", studentTok, sdp, goodPub, nil, 403, "teacher"},
		{"whip other room", "POST", "/whip/err", otherRoom, sdp, goodPub, nil, 403, "another class"},
		{"whip content type", "POST", "/whip/err", teacherTok, "text/plain", goodPub, nil, 415, "application/sdp"},
		{"whip malformed", "POST", "/whip/err", teacherTok, sdp, "hello", nil, 400, "SDP"},
		{"whip too big", "POST", "/whip/err", teacherTok, sdp, strings.Repeat("a", maxSDPLen+1), nil, 413, "large"},
		{"whip no codec", "POST", "/whip/err", teacherTok, sdp, pcmuPub, nil, 422, "codec"},
		{"whip second publisher", "POST", "/whip/err", env.token("err", auth.RoleTeacher, "t2", "Tom"), sdp, goodPub, nil, 409, "already live"},
		{"whep no token", "POST", "/whep/err", "", sdp, goodView, nil, 401, "Bearer"},
		{"whep other room", "POST", "/whep/err", env.token("other", auth.RoleStudent, "x", "X"), sdp, goodView, nil, 403, "another class"},
		{"whep content type", "POST", "/whep/err", studentTok, "application/json", goodView, nil, 415, "application/sdp"},
		{"whep malformed", "POST", "/whep/err", studentTok, sdp, "v=0\r\nnonsense", nil, 400, "SDP"},
		{"whep publish offer", "POST", "/whep/err", studentTok, sdp, goodPub, nil, 400, "direction"},
		{"whep bad video", "POST", "/whep/err?video=slides", studentTok, sdp, goodView, nil, 400, "camera or screen"},
		{"whep lacks class codec", "POST", "/whep/err", studentTok, sdp, h264View, nil, 422, "video/VP8"},
		{"whep no codec", "POST", "/whep/err", studentTok, sdp, pcmuView, nil, 422, "codec"},
		{"delete unknown", "DELETE", "/whip/err/nope", teacherTok, "", "", nil, 404, "no such"},
		{"patch unknown", "PATCH", "/whep/err/nope", studentTok, frag, goodFrag, nil, 404, "no such"},
		{"delete wrong kind", "DELETE", strings.Replace(view.loc, "/whep/", "/whip/", 1), view.token, "", "", nil, 404, "no such"},
		{"delete no token", "DELETE", view.loc, "", "", "", nil, 401, "Bearer"},
		{"delete other participant", "DELETE", view.loc, studentTok, "", "", nil, 403, "another participant"},
		{"delete other room", "DELETE", pub.loc, otherRoom, "", "", nil, 403, "another participant"},
		{"patch content type", "PATCH", view.loc, view.token, sdp, goodFrag, nil, 415, "trickle-ice-sdpfrag"},
		{"patch malformed", "PATCH", view.loc, view.token, frag, "garbage", nil, 400, "SDP"},
		{"patch stale etag", "PATCH", view.loc, view.token, frag, goodFrag, []string{"If-Match", `"old"`}, 412, "ICE session"},
		{"patch bad ufrag", "PATCH", view.loc, view.token, frag, "a=ice-ufrag:u\r\na=ice-pwd:p\r\n", []string{"If-Match", "*"}, 400, "RFC 8839"},
		{"patch bad candidate", "PATCH", pub.loc, pub.token, frag, "m=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:bogus\r\n", []string{"If-Match", pub.etag}, 400, "candidate"},
	} {
		res := env.mediaReq(tc.method, tc.path, tc.token, tc.ctype, tc.body, tc.hdr...)
		require.Equal(t, tc.status, res.status, "%s: %s", tc.name, res.body)
		require.Contains(t, res.body, tc.says, tc.name)
		require.Less(t, len(res.body), 300, tc.name)
		require.Equal(t, "*", res.header.Get("Access-Control-Allow-Origin"), tc.name)
		if tc.status == 401 {
			require.Contains(t, res.header.Get("WWW-Authenticate"), "Bearer", tc.name)
		}
	}

	// The live class did not notice.
	view.waitMedia(20, kindVideo, kindAudio)
	before := rs.packets.Load()
	require.Eventually(t, func() bool { return rs.packets.Load() > before+20 }, waitFor, 10*time.Millisecond)
	require.Zero(t, student.count(typeStreamClosed))
	require.Equal(t, 2, env.srv.sessions.count())
}

func mustInvite(t *testing.T, env *testEnv, room string) string {
	t.Helper()
	tok, err := env.signer.Mint(auth.Claims{Room: room, Role: auth.RoleStudent, Participant: "invite", Invite: true}, time.Hour)
	require.NoError(t, err)
	return tok
}

// TestWHIPOptionsAndLinks: OPTIONS answers CORS preflights, and the 201
// announces the configured ICE servers in Link headers (RFC 9725 4.6).
func TestWHIPOptionsAndLinks(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true})
	res := env.mediaReq(http.MethodOptions, "/whip/opt", "", "", "",
		"Origin", "https://player.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization, content-type")
	require.Equal(t, http.StatusNoContent, res.status)
	require.Equal(t, "*", res.header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, res.header.Get("Access-Control-Allow-Methods"), "POST")
	require.Contains(t, res.header.Get("Access-Control-Allow-Headers"), "Authorization")
	require.Equal(t, "application/sdp", res.header.Get("Accept-Post"))
	res = env.mediaReq(http.MethodOptions, "/whep/opt/some-session", "", "", "")
	require.Equal(t, "application/trickle-ice-sdpfrag", res.header.Get("Accept-Patch"))

	require.Empty(t, linkHeaders(nil))
	links := linkHeaders([]webrtc.ICEServer{
		{URLs: []string{"stun:stun.example.net"}},
		{URLs: []string{"turn:turn.example.net?transport=udp"}, Username: "user", Credential: `pa"ss`},
	})
	require.Equal(t, []string{
		`<stun:stun.example.net>; rel="ice-server"`,
		`<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="pa\"ss"; credential-type="password"`,
	}, links)

	withLinks := newEnvWith(t, func(o *Options) {
		o.ICEServers = []webrtc.ICEServer{{URLs: []string{"stun:stun.example.net"}}}
	})
	view, res := withLinks.newWHEP(t, "/whep/opt", withLinks.token("opt", auth.RoleOperator, "op", "Ops"), nil, false)
	require.Equal(t, http.StatusCreated, res.status, res.body)
	require.Equal(t, []string{`<stun:stun.example.net>; rel="ice-server"`}, res.header.Values("Link"))
	require.Equal(t, "application/sdp", res.header.Get("Content-Type"))
	view.delete()
}

// TestSDPFrag parses trickle ICE fragments (RFC 8840 section 9).
func TestSDPFrag(t *testing.T) {
	t.Parallel()
	f, err := parseSDPFrag("a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\na=group:BUNDLE 0 1\r\n" +
		"m=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 UDP 2130706431 198.51.100.1 39132 typ host\r\n" +
		"a=end-of-candidates\r\nm=video 9 RTP/AVP 96\r\na=mid:1\r\na=candidate:2 1 UDP 2130706431 198.51.100.1 39133 typ host\r\n")
	require.NoError(t, err)
	require.Equal(t, "EsAw", f.ufrag)
	require.Equal(t, "P2uYro0UCOQ4zxjKXaWCBui1", f.pwd)
	require.Len(t, f.cands, 2)
	require.Equal(t, "1", *f.cands[1].SDPMid)
	require.Equal(t, uint16(1), *f.cands[1].SDPMLineIndex)
	require.True(t, strings.HasPrefix(f.cands[0].Candidate, "candidate:1 1 UDP"))
	for _, bad := range []string{"", "garbage", "a=candidate:1 1 UDP 1 1.2.3.4 5 typ host\r\n"} {
		_, err := parseSDPFrag(bad)
		require.ErrorIs(t, err, ErrBadSDP, "%q", bad)
	}
	out := answerFrag("v=0\r\na=ice-ufrag:abc\r\na=ice-pwd:def\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n" +
		"a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n")
	require.Equal(t, "a=ice-ufrag:abc\r\na=ice-pwd:def\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n"+
		"a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n", out)
}

// ICE credentials in a fragment follow RFC 8839 section 5.4: ufrag 4 to
// 256 ice-chars, pwd 22 to 256.
func TestSDPFragICECredentials(t *testing.T) {
	t.Parallel()
	pwd := strings.Repeat("p", 22)
	for _, tc := range []struct {
		ufrag, pwd string
		ok         bool
	}{
		{"abcd", pwd, true},
		{"a+/9", strings.Repeat("Z", 256), true},
		{"abc", pwd, false},
		{"abcd", pwd[:21], false},
		{strings.Repeat("u", 257), pwd, false},
		{"ab cd", pwd, false},
		{"abcd\x00", pwd, false},
		{"abcd", pwd + "=", false},
		{"", pwd, false},
	} {
		_, err := parseSDPFrag("a=ice-ufrag:" + tc.ufrag + "\r\na=ice-pwd:" + tc.pwd + "\r\n")
		if tc.ok {
			require.NoError(t, err, "%q %q", tc.ufrag, tc.pwd)
		} else {
			require.ErrorIs(t, err, ErrBadSDP, "%q %q", tc.ufrag, tc.pwd)
		}
	}
}
