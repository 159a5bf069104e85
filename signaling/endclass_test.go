package signaling

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/cluster"
	"lectern/recording"
)

// TestEndClass: DELETE /api/rooms/{room} is refused without a token, for
// a student, for a teacher or operator of another class and for a class
// nobody is in; an operator of the class ends it: its page closes with
// 4010, its WHIP publisher's and WHEP viewer's sessions end with their
// peer connections, its recording stops complete, another class goes
// on. A teacher of the class may end it too, and a join afterwards opens
// it anew.
func TestEndClass(t *testing.T) {
	t.Parallel()
	e := newRecEnv(t, nil)
	const room = "algebra"
	student, _ := e.join(e.token(room, auth.RoleStudent, "s1", "Ada"))
	other, _ := e.join(e.token("history", auth.RoleStudent, "s2", "Bo"))
	teacher := e.token(room, auth.RoleTeacher, "t1", "Ms Rivera")
	pub := e.startWHIP(t, room, teacher, whipOpts{})
	pub.send()
	view := e.startWHEP(t, "/whep/"+room, e.token(room, auth.RoleStudent, "s3", "Cy"))
	view.waitMedia(5, kindVideo)
	res := e.mediaReq(http.MethodPost, "/api/rooms/"+room+"/recording", teacher, "", "")
	require.Equal(t, http.StatusCreated, res.status, res.body)
	rec := waitRecording(student, true)
	require.Eventually(t, func() bool {
		info, err := e.srv.rec.cat.Get(recording.RecordingID(rec.ID))
		return err == nil && info.Start.Before(time.Now().Add(-500*time.Millisecond))
	}, waitFor, 20*time.Millisecond, "the recording's file starts")

	for _, c := range []struct {
		what, path, token string
		want              int
	}{
		{"no token", "/api/rooms/" + room, "", http.StatusUnauthorized},
		{"a student", "/api/rooms/" + room, e.token(room, auth.RoleStudent, "s1", "Ada"), http.StatusForbidden},
		{"another class's operator", "/api/rooms/" + room, e.token("history", auth.RoleOperator, "op", "Ops"), http.StatusForbidden},
		{"another class's teacher", "/api/rooms/" + room, e.token("history", auth.RoleTeacher, "t9", "T"), http.StatusForbidden},
		{"every class at once", "/api/rooms/*", e.token(auth.AllRooms, auth.RoleOperator, "op", "Ops"), http.StatusForbidden},
		{"a class nobody is in", "/api/rooms/geometry", e.token(auth.AllRooms, auth.RoleOperator, "op", "Ops"), http.StatusNotFound},
	} {
		res := e.mediaReq(http.MethodDelete, c.path, c.token, "", "")
		require.Equal(t, c.want, res.status, "%s: %s", c.what, res.body)
	}
	require.True(t, student.isOpen(), "refusals end nothing")

	res = e.mediaReq(http.MethodDelete, "/api/rooms/"+room, e.token(room, auth.RoleOperator, "op", "Ops"), "", "")
	require.Equal(t, http.StatusOK, res.status, res.body)
	var ended endedState
	require.NoError(t, json.Unmarshal([]byte(res.body), &ended))
	require.Equal(t, endedState{Room: room, Participants: 3}, ended, "the student, the WHIP teacher, the WHEP viewer")
	require.Equal(t, closeClassEnded, student.closeCode())
	student.mu.Lock()
	require.Equal(t, "the class has ended", student.reason)
	student.mu.Unlock()
	require.Eventually(t, func() bool { return e.srv.sessions.count() == 0 }, waitFor, 10*time.Millisecond, "the sessions end")
	for _, pc := range []*webrtc.PeerConnection{pub.pc, view.pc} {
		require.Eventually(t, func() bool {
			s := pc.ConnectionState()
			return s == webrtc.PeerConnectionStateClosed || s == webrtc.PeerConnectionStateFailed ||
				s == webrtc.PeerConnectionStateDisconnected
		}, 15*time.Second, 20*time.Millisecond, "the server closes the peer connection")
	}
	require.False(t, e.srv.rec.state(room).Active, "the recording stops")
	info, err := e.srv.rec.cat.Get(recording.RecordingID(rec.ID))
	require.NoError(t, err)
	require.True(t, info.Complete)
	require.Nil(t, e.srv.hub.lookup(room))
	require.True(t, other.isOpen(), "another class goes on")

	// Joined again, the class is a new one, which its teacher may end.
	again, w := e.join(e.token(room, auth.RoleStudent, "s1", "Ada"))
	require.Len(t, w.Participants, 1)
	res = e.mediaReq(http.MethodDelete, "/api/rooms/"+room, teacher, "", "")
	require.Equal(t, http.StatusOK, res.status, res.body)
	require.Equal(t, closeClassEnded, again.closeCode())
	res = e.mediaReq(http.MethodDelete, "/api/rooms/"+room, teacher, "", "")
	require.Equal(t, http.StatusNotFound, res.status, "nothing left to end")
}

// TestEndClassAcrossNodes: the class's teacher is on node a (its origin),
// a student on node b; an operator asks node c, which has nobody of the
// class, to end it: both pages close with 4010 and the class leaves the
// directory. A class no node has is 404 from c.
func TestEndClassAcrossNodes(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	var nodes []*cluster.Node
	var envs []*testEnv
	for _, id := range []cluster.NodeID{"a", "b", "c"} {
		n, _ := startClusterNode(t, ns, id)
		nodes = append(nodes, n)
		envs = append(envs, newClusterEnv(t, n))
	}
	const room = "lecture"
	teacher, _ := envs[0].join(envs[0].token(room, auth.RoleTeacher, "t1", "Tess"))
	require.Equal(t, cluster.NodeID("a"), origin(t, nodes[2], room))
	student, _ := envs[1].join(envs[1].token(room, auth.RoleStudent, "s1", "Sam"))
	teacher.waitType(typeParticipantJoined) // b's class hears a's and the other way round

	op := envs[2].token(auth.AllRooms, auth.RoleOperator, "op", "Ops")
	res := envs[2].mediaReq(http.MethodDelete, "/api/rooms/nowhere", op, "", "")
	require.Equal(t, http.StatusNotFound, res.status, res.body)
	res = envs[2].mediaReq(http.MethodDelete, "/api/rooms/"+room, op, "", "")
	require.Equal(t, http.StatusOK, res.status, res.body)
	require.Equal(t, closeClassEnded, teacher.closeCode())
	require.Equal(t, closeClassEnded, student.closeCode())
	require.Eventually(t, func() bool {
		return envs[0].srv.hub.lookup(room) == nil && envs[1].srv.hub.lookup(room) == nil
	}, waitFor, 10*time.Millisecond, "the class closes on every node")
	require.Eventually(t, func() bool { return origin(t, nodes[2], room) == "" }, waitFor, 20*time.Millisecond,
		"the origin releases the class")
}
