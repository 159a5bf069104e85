package sfu

import (
	"net"
	"strings"
	"sync"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// MaxRemoteCandidates is how many remote candidates one peer connection
// takes, from its SDP and trickled together. A browser sends a handful
// (one per interface and transport, a server-reflexive and a relay one);
// without a cap one request naming hundreds of addresses would make the
// node send connectivity checks (RFC 8445 6.1.4) to all of them.
const MaxRemoteCandidates = 10

// candidateGate admits a peer connection's remote candidates: at most
// MaxRemoteCandidates, each naming an IP address (no name to resolve)
// that a client can really have. A nil gate admits everything (a
// puller's remote is another node, whose candidates are trusted).
type candidateGate struct {
	loopback bool // the node itself is on loopback: loopback clients are real

	mu sync.Mutex
	n  int
}

func (e *Engine) newGate() *candidateGate { return &candidateGate{loopback: e.loopback} }

// admitInit says whether to add a trickled candidate. End-of-candidates
// and unparsable candidates pass, the latter for pion to refuse with the
// error the caller reports.
func (g *candidateGate) admitInit(c webrtc.ICECandidateInit) bool {
	if g == nil || c.Candidate == "" {
		return true
	}
	cand, err := ice.UnmarshalCandidate(c.Candidate)
	if err != nil {
		return true
	}
	return g.admit(cand)
}

// admit counts cand in if there is room and its address is usable.
func (g *candidateGate) admit(cand ice.Candidate) bool {
	if !g.usable(cand.Address()) {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n >= MaxRemoteCandidates {
		return false
	}
	g.n++
	return true
}

// usable refuses what no client can be reached at: names (mDNS names,
// which this server does not resolve, RFC 8839 5.1, or anything needing
// a lookup), the unspecified address, multicast, link-local (RFC 8445
// 5.1.1.1: link-local addresses are not to be used unless both ends
// share the link), and loopback unless the node itself is on loopback.
func (g *candidateGate) usable(addr string) bool {
	ip := net.ParseIP(addr)
	switch {
	case ip == nil, ip.IsUnspecified(), ip.IsMulticast(), ip.Equal(net.IPv4bcast),
		ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return false
	case ip.IsLoopback():
		return g.loopback
	}
	return true
}

// filterSDP drops the candidate lines of a remote description the gate
// does not admit; the rest of the description is left as it was.
func (g *candidateGate) filterSDP(sdp string) string {
	if g == nil || !strings.Contains(sdp, "a=candidate:") {
		return sdp
	}
	lines := strings.SplitAfter(sdp, "\n")
	out := lines[:0]
	for _, line := range lines {
		if c, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "a="); ok && strings.HasPrefix(c, "candidate:") {
			cand, err := ice.UnmarshalCandidate(c)
			if err != nil || !g.admit(cand) {
				continue
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "")
}

// reset starts counting again: an ICE restart discards the old candidates
// (RFC 8445 9).
func (g *candidateGate) reset() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.n = 0
	g.mu.Unlock()
}
