package signaling

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/sfu"
)

// TestWHEPPostWith500Candidates: one WHEP POST naming 500 addresses (100
// of them sockets of the test's, the rest link-local, multicast,
// unspecified or names), then PATCHes trickling the sockets' again, make the
// node check at most sfu.MaxRemoteCandidates of the addresses.
func TestWHEPPostWith500Candidates(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true})
	tok := env.token("flood", auth.RoleStudent, "f", "Flo")
	cands, hits := udpTargets(t, 100)
	junk := []string{"169.254.169.254", "fe80::1", "239.255.255.250", "0.0.0.0", "y.local"}
	for i := len(cands); i < 500; i++ {
		cands = append(cands, fmt.Sprintf("a=candidate:%d 1 udp 100 %s %d typ host", i, junk[i%len(junk)], 1000+i))
	}
	pc, err := clientAPI().NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{kindAudio, kindVideo} {
		_, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		require.NoError(t, err)
	}
	offer := offerSDP(t, pc, true)
	offer = strings.Replace(offer, "a=ice-pwd:", strings.Join(cands, "\r\n")+"\r\na=ice-pwd:", 1)
	res := env.mediaReq(http.MethodPost, "/whep/flood", tok, ctypeSDP, offer)
	require.Equal(t, http.StatusCreated, res.status, res.body)
	ufrag := strings.SplitN(strings.SplitN(offer, "a=ice-ufrag:", 2)[1], "\r\n", 2)[0]
	for i := 0; i < 100; i += 25 { // PATCH bodies are small: the sockets' candidates, in four
		frag := "a=ice-ufrag:" + ufrag + "\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
			strings.Join(cands[i:i+25], "\r\n") + "\r\n"
		patch := env.mediaReq(http.MethodPatch, res.header.Get("Location"), tok, ctypeFrag, frag, "If-Match", res.header.Get("ETag"))
		require.Equal(t, http.StatusNoContent, patch.status, patch.body)
	}
	waitChecks(t, hits)
	require.Equal(t, http.StatusOK, env.mediaReq(http.MethodDelete, res.header.Get("Location"), tok, "", "").status)
}

// TestWebsocketICEFlood: a publisher whose offer names no address of its
// own and which then trickles 40 candidates over the websocket makes the
// node check at most sfu.MaxRemoteCandidates of them.
func TestWebsocketICEFlood(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true})
	teacher, _ := env.join(env.token("flood-ws", auth.RoleTeacher, "t", "Tess"))
	cands, hits := udpTargets(t, 40)
	pc, err := clientAPI().NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	defer pc.Close()
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v", "s")
	require.NoError(t, err)
	_, err = pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	require.NoError(t, err)
	teacher.send(typePublish, "pub", publishData{Stream: "cam", Label: labelCamera, SDP: offerSDP(t, pc, true)})
	teacher.wait("answer", func(m envelope) bool { return m.Type == typeAnswer })
	zero := uint16(0)
	mid := "0"
	for _, c := range cands {
		teacher.send(typeICE, "", iceData{Stream: "cam", Candidate: &webrtc.ICECandidateInit{
			Candidate: strings.TrimPrefix(c, "a="), SDPMid: &mid, SDPMLineIndex: &zero}})
	}
	waitChecks(t, hits)
	require.True(t, teacher.isOpen())
}

// udpTargets opens n UDP sockets on loopback and returns a candidate
// attribute for each, and how many of them have received anything.
func udpTargets(t *testing.T, n int) ([]string, func() int) {
	t.Helper()
	hit := make([]atomic.Bool, n)
	var wg sync.WaitGroup
	var conns []*net.UDPConn
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	})
	cands := make([]string, 0, n)
	for i := range n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := c.ReadFrom(buf); err != nil {
					return
				}
				hit[i].Store(true)
			}
		}()
		cands = append(cands, fmt.Sprintf("a=candidate:%d 1 udp %d 127.0.0.1 %d typ host", i, 2130706431-i, c.LocalAddr().(*net.UDPAddr).Port))
	}
	return cands, func() int {
		k := 0
		for i := range hit {
			if hit[i].Load() {
				k++
			}
		}
		return k
	}
}

// waitChecks waits for the first check to arrive, gives the paced rest
// (RFC 8445 6.1.4.2) time to come, and requires at most the cap.
func waitChecks(t *testing.T, hits func() int) {
	t.Helper()
	require.Eventually(t, func() bool { return hits() > 0 }, waitFor, 20*time.Millisecond)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && hits() <= sfu.MaxRemoteCandidates {
		time.Sleep(50 * time.Millisecond)
	}
	require.LessOrEqual(t, hits(), sfu.MaxRemoteCandidates)
	t.Logf("%d addresses checked", hits())
}
