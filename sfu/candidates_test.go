package sfu

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

func TestCandidateGateAddresses(t *testing.T) {
	t.Parallel()
	for _, loopback := range []bool{false, true} {
		g := &candidateGate{loopback: loopback}
		for addr, want := range map[string]bool{
			"192.0.2.10": true, "10.1.2.3": true, "2001:db8::5": true,
			"127.0.0.1": loopback, "::1": loopback,
			"0.0.0.0": false, "::": false, "169.254.169.254": false, "fe80::1": false,
			"224.0.0.251": false, "239.1.2.3": false, "ff02::fb": false, "255.255.255.255": false,
			"4f2c9a8e-1b7d.local": false, "metadata.google.internal": false,
		} {
			require.Equal(t, want, g.usable(addr), "%s, node on loopback %v", addr, loopback)
		}
	}
}

// stunTargets are UDP sockets on loopback that count the datagrams (the
// connectivity checks) each receives.
type stunTargets struct {
	conns []*net.UDPConn
	hit   []atomic.Bool
	wg    sync.WaitGroup
}

func newSTUNTargets(t *testing.T, n int) *stunTargets {
	t.Helper()
	st := &stunTargets{hit: make([]atomic.Bool, n)}
	for i := range n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		st.conns = append(st.conns, c)
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := c.ReadFrom(buf); err != nil {
					return
				}
				st.hit[i].Store(true)
			}
		}()
	}
	t.Cleanup(func() {
		for _, c := range st.conns {
			_ = c.Close()
		}
		st.wg.Wait()
	})
	return st
}

func (st *stunTargets) hits() int {
	n := 0
	for i := range st.hit {
		if st.hit[i].Load() {
			n++
		}
	}
	return n
}

// candidates are 500 candidate attributes: one for each target, then
// addresses never to be checked (link-local, multicast, unspecified,
// names).
func (st *stunTargets) candidates() []string {
	var out []string
	for i, c := range st.conns {
		out = append(out, fmt.Sprintf("candidate:%d 1 udp %d 127.0.0.1 %d typ host", i+1, 2130706431-i, c.LocalAddr().(*net.UDPAddr).Port))
	}
	junk := []string{"169.254.169.254", "fe80::1", "224.0.0.251", "0.0.0.0", "ff02::1", "x.local"}
	for i := len(out); i < 500; i++ {
		out = append(out, fmt.Sprintf("candidate:%d 1 udp %d %s %d typ host", i+1, 1000+i, junk[i%len(junk)], 9+i))
	}
	return out
}

// withCandidates replaces an offer's candidates by cands.
func withCandidates(sdp string, cands []string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(sdp, "\r\n") {
		if strings.HasPrefix(line, "a=candidate:") || strings.HasPrefix(line, "a=end-of-candidates") {
			continue
		}
		b.WriteString(line)
		if strings.HasPrefix(line, "a=ice-pwd:") {
			for _, c := range cands {
				b.WriteString("a=" + c + "\r\n")
			}
		}
	}
	return b.String()
}

// remoteCandidates counts the remote candidates pion knows of.
func remoteCandidates(pc *webrtc.PeerConnection) int {
	n := 0
	for _, s := range pc.GetStats() {
		if c, ok := s.(webrtc.ICECandidateStats); ok && c.Type == webrtc.StatsTypeRemoteCandidate {
			n++
		}
	}
	return n
}

// TestOfferWith500CandidatesChecksAtMostTheCap: a WHEP offer naming 500
// addresses, 100 of them sockets of the test's, makes the node check at
// most MaxRemoteCandidates of them; the same 500 trickled afterwards add
// none.
func TestOfferWith500CandidatesChecksAtMostTheCap(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	st := newSTUNTargets(t, 100)
	_, offer := recvOffer(t, viewerAPI(t), webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo)
	offer.SDP = withCandidates(offer.SDP, st.candidates()[:250])
	v, _, err := e.NewViewer(offer, ViewerConfig{StreamID: "class"})
	require.NoError(t, err)
	defer v.Close()
	for _, c := range st.candidates() {
		mid, line := "0", uint16(0)
		require.NoError(t, v.AddICECandidate(webrtc.ICECandidateInit{Candidate: c, SDPMid: &mid, SDPMLineIndex: &line}))
	}
	require.Eventually(t, func() bool { return st.hits() > 0 }, 10*time.Second, 20*time.Millisecond)
	// Checks are paced (RFC 8445 6.1.4.2): give the rest time to come.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && st.hits() < MaxRemoteCandidates {
		time.Sleep(50 * time.Millisecond)
	}
	require.LessOrEqual(t, st.hits(), MaxRemoteCandidates)
	require.LessOrEqual(t, remoteCandidates(v.pc), MaxRemoteCandidates)
	t.Logf("%d of 100 addresses checked, %d remote candidates", st.hits(), remoteCandidates(v.pc))
}

func TestICERestartCountsAgain(t *testing.T) {
	t.Parallel()
	g := &candidateGate{loopback: true}
	c, err := ice.UnmarshalCandidate("candidate:1 1 udp 1 127.0.0.1 9 typ host")
	require.NoError(t, err)
	for range MaxRemoteCandidates {
		require.True(t, g.admit(c))
	}
	require.False(t, g.admit(c))
	g.reset()
	require.True(t, g.admit(c))
	var none *candidateGate
	require.True(t, none.admitInit(webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 1 169.254.1.1 9 typ host"}))
}
