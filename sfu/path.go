package sfu

import (
	"net/netip"
	"sync"

	"github.com/pion/webrtc/v4"
)

// Path is how a client's peer connection reaches the node: the type of
// the client's candidate in the selected pair (RFC 8445 5.1.1: host,
// srflx, prflx or relay) and its transport: udp or tcp, and for a relay
// candidate of this node's TURN server, the transport the client reaches
// the relay over (udp, tcp or tls).
type Path struct {
	Type      string
	Transport string
}

// String is "type/transport", e.g. "relay/tls".
func (p Path) String() string { return p.Type + "/" + p.Transport }

// pathCounts counts the connected peer connections of each path.
type pathCounts struct {
	mu sync.Mutex // leaf lock
	m  map[Path]int
}

func (c *pathCounts) add(p Path, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[Path]int{}
	}
	if c.m[p] += n; c.m[p] <= 0 {
		delete(c.m, p)
	}
}

// Paths returns how many client peer connections (publishers,
// subscribers, viewers; not relays between nodes) are connected over
// each path now.
func (e *Engine) Paths() map[Path]int {
	e.paths.mu.Lock()
	defer e.paths.mu.Unlock()
	out := make(map[Path]int, len(e.paths.m))
	for p, n := range e.paths.m {
		out[p] = n
	}
	return out
}

// pathOf reads pc's selected candidate pair.
func (e *Engine) pathOf(pc *webrtc.PeerConnection) (Path, bool) {
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local == nil || pair.Remote == nil {
		return Path{}, false
	}
	p := Path{Type: pair.Remote.Typ.String(), Transport: pair.Local.Protocol.String()}
	if pair.Remote.Typ == webrtc.ICECandidateTypeRelay && e.relayTransport != nil {
		if a, err := netip.ParseAddr(pair.Remote.Address); err == nil {
			if t := e.relayTransport(netip.AddrPortFrom(a.Unmap(), pair.Remote.Port)); t != "" {
				p.Transport = t
			}
		}
	}
	return p, true
}

// pathSlot is one peer connection's place in the engine's path counts.
// The zero slot (no engine: a puller) counts nothing.
type pathSlot struct {
	e *Engine

	mu       sync.Mutex
	path     Path
	counted  bool
	released bool
}

// connected counts the connection under its selected pair's path, and
// returns it.
func (s *pathSlot) connected(pc *webrtc.PeerConnection) (Path, bool) {
	if s.e == nil {
		return Path{}, false
	}
	p, ok := s.e.pathOf(pc)
	if !ok {
		return p, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return p, false
	}
	if s.counted {
		s.e.paths.add(s.path, -1)
	}
	s.path, s.counted = p, true
	s.e.paths.add(p, 1)
	return p, true
}

// release takes the connection out of the counts, once.
func (s *pathSlot) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counted && !s.released {
		s.e.paths.add(s.path, -1)
	}
	s.released = true
}

// report counts the connection's path and tells onPath, if set.
func (s *pathSlot) report(pc *webrtc.PeerConnection, onPath func(Path)) {
	if p, ok := s.connected(pc); ok && onPath != nil {
		onPath(p)
	}
}
