package signaling

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"lectern/auth"
)

// TestWHIPDeleteFreesEverything is not parallel: goleak compares against
// the goroutines present when it starts. A WHIP publisher and a WHEP
// viewer, both trickling, exchange media; DELETE on each frees its peer
// connection, its participant and its session at once, and the server's
// side of each UDP flow is gone: the clients, with short ICE timeouts,
// find their consent checks unanswered. After shutdown no goroutine is
// left.
func TestWHIPDeleteFreesEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	env := newEnvWith(t, func(*Options) {})
	pub := env.startWHIP(t, "free", env.token("free", auth.RoleTeacher, "t", "Tess"), whipOpts{trickle: true, api: quickAPI()})
	pub.send()
	view, res := env.newWHEP(t, "/whep/free", env.token("free", auth.RoleStudent, "v", "Vic"), quickAPI(), true)
	require.Equal(t, http.StatusCreated, res.status, res.body)
	patchCandidates(t, env, view.loc, view.token, view.etag, view.pc, view.cands)
	waitPCConnected(t, view.pc)
	view.waitMedia(20, kindVideo, kindAudio)
	st := env.engine.Stats()
	require.Equal(t, int64(1), st.Publishers)
	require.Equal(t, int64(1), st.Subscribers)

	view.delete()
	pub.delete()
	st = env.engine.Stats()
	require.Zero(t, st.Publishers, "DELETE returns once the publisher is closed")
	require.Zero(t, st.Subscribers, "DELETE returns once the viewer is closed")
	require.Zero(t, st.Tracks)
	require.Zero(t, env.srv.sessions.count())
	require.Zero(t, env.srv.hub.stats().classes, "the class closed with its last participant")
	for _, pc := range []*webrtc.PeerConnection{pub.pc, view.pc} {
		require.Eventually(t, func() bool {
			s := pc.ICEConnectionState()
			return s == webrtc.ICEConnectionStateDisconnected || s == webrtc.ICEConnectionStateFailed ||
				s == webrtc.ICEConnectionStateClosed
		}, 10*time.Second, 20*time.Millisecond, "the server still answers the client's ICE checks")
	}

	pub.close()
	view.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, env.srv.Shutdown(ctx))
	env.http.Close()
	env.http.Client().CloseIdleConnections()
	require.NoError(t, env.engine.Close())
}

// quickAPI is clientAPI with short ICE timeouts: a peer that stops
// answering is noticed within a second.
func quickAPI() *webrtc.API {
	me := &webrtc.MediaEngine{}
	_ = me.RegisterDefaultCodecs()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(500*time.Millisecond, 2*time.Second, 100*time.Millisecond)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
}
