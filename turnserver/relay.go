package turnserver

import (
	"net"
	"strconv"

	"github.com/pion/turn/v5"
)

// relayGen makes the relayed transport addresses of allocations (RFC
// 8656 7.2): a UDP socket on an ephemeral port of the relay IP, whose
// writes pass the policy. Only this node's media plane ever talks to
// them, so they need no opening in a firewall.
type relayGen struct {
	ip4, ip6 net.IP // nil: no relays of that family (RFC 6156 4.2, 440)
	policy   *policy
}

// Validate checks the generator (pion calls it once).
func (g *relayGen) Validate() error {
	if g.ip4 == nil && g.ip6 == nil {
		return ErrBadConfig
	}
	return nil
}

// AllocatePacketConn opens one allocation's relay socket.
func (g *relayGen) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	ip := g.ip4
	if c.Network == "udp6" {
		ip = g.ip6
	}
	if ip == nil {
		return nil, nil, errFamily
	}
	pc, err := net.ListenPacket(c.Network, net.JoinHostPort(ip.String(), strconv.Itoa(c.RequestedPort)))
	if err != nil {
		return nil, nil, err
	}
	return &guardedConn{PacketConn: pc, policy: g.policy}, pc.LocalAddr(), nil
}

// AllocateListener refuses TCP allocations (RFC 6062).
func (g *relayGen) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errTCPRelay
}

// AllocateConn refuses TCP relay connections (RFC 6062).
func (g *relayGen) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errTCPRelay
}

// guardedConn is a relay socket that drops datagrams the policy does not
// let through. Permissions are per IP address (RFC 8656 9); this adds the
// port check that keeps the node's own other services out of reach.
type guardedConn struct {
	net.PacketConn
	policy *policy
}

// WriteTo sends b to addr if the policy allows it, else drops it silently,
// as a relay does with data it has no permission for (RFC 8656 11.3).
func (g *guardedConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return len(b), nil
	}
	ap := ua.AddrPort()
	if !g.policy.reach(ap) {
		return len(b), nil
	}
	if out := g.policy.outbound(ap); out != ap {
		return g.PacketConn.WriteTo(b, net.UDPAddrFromAddrPort(out))
	}
	return g.PacketConn.WriteTo(b, addr)
}

// ReadFrom reads a datagram for the client, reporting a hairpinned
// sender under the public address the client knows it by.
func (g *guardedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := g.PacketConn.ReadFrom(b)
	if ua, ok := from.(*net.UDPAddr); ok && len(g.policy.hairpin) > 0 {
		if in := g.policy.inbound(ua.AddrPort()); in != ua.AddrPort() {
			from = net.UDPAddrFromAddrPort(in)
		}
	}
	return n, from, err
}
