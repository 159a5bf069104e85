package signaling

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"lectern/auth"
)

func shortReady(tm *timings) { tm.ready = 300 * time.Millisecond }

// TestWHIPTeacherLiveOnClassPage: a WHIP publisher is the teacher's camera
// and microphone: a student on the class page sees the teacher join, gets
// stream_added, live and an offer, and receives the media. The teacher's
// own page joining and leaving meanwhile does not disturb it.
func TestWHIPTeacherLiveOnClassPage(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, tm: shortReady})
	student, w := env.join(env.token("obs", auth.RoleStudent, "s1", "Sam"))
	require.False(t, w.Live)

	pub := env.startWHIP(t, "obs", env.token("obs", auth.RoleTeacher, "t", "Tess"), whipOpts{})
	require.True(t, strings.HasPrefix(pub.loc, "/whip/obs/"), pub.loc)
	require.NotEmpty(t, pub.etag)
	pub.send()

	student.wait("teacher joined", func(m envelope) bool {
		return m.Type == typeParticipantJoined && strings.Contains(string(m.Data), `"role":"teacher"`)
	})
	var added streamInfo
	student.decode(student.waitType(typeStreamAdded), &added)
	require.Equal(t, "t", added.Owner)
	require.Equal(t, labelCamera, added.Label)
	require.Equal(t, []string{"audio", "video"}, added.Kinds)
	student.wait("live", func(m envelope) bool { return m.Type == typeLive && strings.Contains(string(m.Data), "true") })
	rs := newReceiver(t, student)
	rs.accept(added.Stream)
	require.Eventually(t, func() bool { return rs.packets.Load() > 20 }, waitFor, 10*time.Millisecond)

	// The teacher opens the class page too: same participant, the WHIP
	// stream goes on, and the page may not start a second camera.
	teacher, tw := env.join(env.token("obs", auth.RoleTeacher, "t", "Tess"))
	require.True(t, tw.Live)
	teacher.send(typePublish, "cam", publishData{Stream: "cam", Label: labelCamera, SDP: "v=0"})
	require.Equal(t, "conflict", teacher.waitError("cam").Code)
	require.Zero(t, teacher.count(typeOffer), "the teacher's page is not offered its own WHIP stream")
	teacher.send(typeLeave, "", nil)
	teacher.closeCode()
	before := rs.packets.Load()
	require.Eventually(t, func() bool { return rs.packets.Load() > before+20 }, waitFor, 10*time.Millisecond)

	pub.delete()
	student.wait("closed", func(m envelope) bool {
		return m.Type == typeStreamClosed && strings.Contains(string(m.Data), added.Stream)
	})
	student.wait("not live", func(m envelope) bool { return m.Type == typeLive && strings.Contains(string(m.Data), "false") })
	student.waitType(typeParticipantLeft)
	require.Equal(t, 1, student.count(typeParticipantLeft), "the teacher left once, when the WHIP session ended")
	require.Eventually(t, func() bool {
		st := env.engine.Stats()
		return st.Publishers == 0 && st.Subscribers == 0 && env.srv.sessions.count() == 0
	}, waitFor, 10*time.Millisecond)
	res := env.mediaReq(http.MethodDelete, pub.loc, pub.token, "", "")
	require.Equal(t, http.StatusNotFound, res.status)
}

// TestWHIPTrickleAndICERestart: candidates trickled with PATCH (RFC 8840)
// are accepted, and an ICE restart (If-Match: *) answers new credentials
// and a new ETag, after which media still flows and the old ETag is stale.
func TestWHIPTrickleAndICERestart(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, tm: shortReady})
	pub := env.startWHIP(t, "ice", env.token("ice", auth.RoleTeacher, "t", "Tess"), whipOpts{trickle: true})
	pub.send()
	view, res := env.newWHEP(t, "/whep/ice", env.token("ice", auth.RoleStudent, "v", "Vic"), nil, true)
	require.Equal(t, http.StatusCreated, res.status, res.body)
	patchCandidates(t, env, view.loc, view.token, view.etag, view.pc, view.cands)
	waitPCConnected(t, view.pc)
	view.waitMedia(20, kindVideo, kindAudio)

	oldETag := view.etag
	restartICE(t, view)
	require.NotEqual(t, oldETag, view.etag)
	view.waitMedia(20, kindVideo, kindAudio)

	frag := "a=ice-ufrag:xxxx\r\na=ice-pwd:yyyyyyyyyyyyyyyyyyyyyy\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
	res = env.mediaReq(http.MethodPatch, view.loc, view.token, "application/trickle-ice-sdpfrag", frag, "If-Match", oldETag)
	require.Equal(t, http.StatusPreconditionFailed, res.status, res.body)
}

// restartICE restarts the viewer's ICE session over PATCH, as a WHEP
// client does: new local credentials go in the fragment, the server's new
// credentials come back in the 200 answer.
func restartICE(t *testing.T, v *whepView) {
	t.Helper()
	offer, err := v.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	require.NoError(t, err)
	gathered := webrtc.GatheringCompletePromise(v.pc)
	require.NoError(t, v.pc.SetLocalDescription(offer))
	<-gathered
	ufrag, pwd := iceCreds(v.pc.LocalDescription().SDP)
	frag := "a=ice-ufrag:" + ufrag + "\r\na=ice-pwd:" + pwd + "\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
	for _, l := range strings.Split(v.pc.LocalDescription().SDP, "\r\n") {
		if strings.HasPrefix(l, "a=candidate:") {
			frag += l + "\r\n"
		}
	}
	res := v.env.mediaReq(http.MethodPatch, v.loc, v.token, "application/trickle-ice-sdpfrag", frag, "If-Match", "*")
	require.Equal(t, http.StatusOK, res.status, res.body)
	require.Equal(t, "application/trickle-ice-sdpfrag", res.header.Get("Content-Type"))
	newUfrag, newPwd := iceCreds(res.body)
	oldUfrag, oldPwd := iceCreds(v.pc.RemoteDescription().SDP)
	require.NotEmpty(t, newUfrag)
	require.NotEqual(t, oldUfrag, newUfrag)
	answer := strings.NewReplacer("a=ice-ufrag:"+oldUfrag, "a=ice-ufrag:"+newUfrag, "a=ice-pwd:"+oldPwd, "a=ice-pwd:"+newPwd).
		Replace(v.pc.RemoteDescription().SDP)
	require.NoError(t, v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}))
	v.etag = res.header.Get("ETag")
}

// apiWith is a loopback pion client with only the codecs given.
func apiWith(t *testing.T, codecs ...webrtc.RTPCodecParameters) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	for _, c := range codecs {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(c.MimeType, "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		require.NoError(t, me.RegisterCodec(c, kind))
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
}

var (
	codecPCMU = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0}
	codecH264 = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}, PayloadType: 102}
	codecOpus = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}
)

// offerFrom makes a complete offer of pc's kinds in direction dir.
func offerFrom(t *testing.T, api *webrtc.API, dir webrtc.RTPTransceiverDirection, kinds ...webrtc.RTPCodecType) string {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	for _, k := range kinds {
		_, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: dir})
		require.NoError(t, err)
	}
	return offerSDP(t, pc, false)
}
