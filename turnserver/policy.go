package turnserver

import (
	"net"
	"net/netip"
)

// deniedPrefixes are the peer addresses a relay must never reach: this
// host, the networks it sits in, and addresses that are not unicast on
// the internet (CVE-2020-26262). IPv4-mapped IPv6 addresses are unmapped
// before the check, so ::ffff:127.0.0.1 is 127.0.0.1.
var deniedPrefixes = mustPrefixes(
	// IPv4 special-purpose registry (RFC 6890 and its updates).
	"0.0.0.0/8",       // "this network" (RFC 791), incl. the unspecified address
	"10.0.0.0/8",      // private (RFC 1918)
	"100.64.0.0/10",   // carrier-grade NAT (RFC 6598)
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local (RFC 3927), incl. cloud metadata 169.254.169.254
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments (RFC 6890)
	"192.0.2.0/24",    // documentation TEST-NET-1 (RFC 5737)
	"192.88.99.0/24",  // 6to4 relay anycast (RFC 7526)
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking (RFC 2544)
	"198.51.100.0/24", // documentation TEST-NET-2
	"203.0.113.0/24",  // documentation TEST-NET-3
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved (RFC 1112), incl. broadcast 255.255.255.255
	// IPv6 special-purpose registry (RFC 6890 and its updates).
	"::/96",           // unspecified, loopback, IPv4-compatible (RFC 4291 2.5.5.1)
	"::ffff:0:0:0/96", // IPv4-translated (RFC 2765)
	"64:ff9b::/96",    // NAT64 (RFC 6052): would reach the IPv4 address it embeds
	"64:ff9b:1::/48",  // local-use NAT64 (RFC 8215)
	"100::/64",        // discard-only (RFC 6666)
	"2001::/23",       // IETF protocol assignments, incl. Teredo (RFC 4380)
	"2001:db8::/32",   // documentation (RFC 3849)
	"2002::/16",       // 6to4 (RFC 3056): would reach the IPv4 address it embeds
	"3fff::/20",       // documentation (RFC 9637)
	"5f00::/16",       // segment routing SIDs (RFC 9602)
	"fc00::/7",        // unique local (RFC 4193)
	"fe80::/10",       // link-local
	"fec0::/10",       // site-local, deprecated (RFC 3879)
	"ff00::/8",        // multicast
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Denied reports whether ip is in one of the ranges a relay refuses,
// whatever the operator allows.
func Denied(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return true
	}
	for _, p := range deniedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// policy decides which peers a relay may reach: the node's own media
// addresses (on its media ports only, see guardedConn) and the ranges the
// operator allows, then anything not denied.
type policy struct {
	own     map[netip.Addr]bool
	ports   map[int]bool // the node's media ports, the only ones reachable on own
	allow   []netip.Prefix
	hairpin map[netip.Addr]netip.Addr // public own address -> local one
}

// outbound is where a relayed datagram to addr really goes.
func (p *policy) outbound(addr netip.AddrPort) netip.AddrPort {
	if local, ok := p.hairpin[addr.Addr().Unmap()]; ok {
		return netip.AddrPortFrom(local, addr.Port())
	}
	return addr
}

// inbound is the address a datagram from addr is reported from: the
// public address a hairpinned one stands for.
func (p *policy) inbound(addr netip.AddrPort) netip.AddrPort {
	for public, local := range p.hairpin {
		if local == addr.Addr().Unmap() {
			return netip.AddrPortFrom(public, addr.Port())
		}
	}
	return addr
}

func newPolicy(own []netip.Addr, ports []int, allow []netip.Prefix) *policy {
	p := &policy{own: map[netip.Addr]bool{}, ports: map[int]bool{}, allow: allow}
	for _, a := range own {
		p.own[a.Unmap()] = true
	}
	for _, port := range ports {
		p.ports[port] = true
	}
	return p
}

// permit is the check of CreatePermission and ChannelBind (RFC 8656 9,
// 12): a permission is per peer IP address.
func (p *policy) permit(ip netip.Addr) bool {
	ip = ip.Unmap()
	if p.own[ip] {
		return true
	}
	for _, a := range p.allow {
		if a.Contains(ip) {
			return true
		}
	}
	return !Denied(ip)
}

// reach is the check of each relayed datagram: on the node's own
// addresses only its media ports may be reached (not its NATS or HTTP
// ports), elsewhere what permit allows.
func (p *policy) reach(addr netip.AddrPort) bool {
	ip := addr.Addr().Unmap()
	if p.own[ip] {
		return p.ports[int(addr.Port())]
	}
	return p.permit(ip)
}

// permissionHandler is permit in pion's terms.
func (p *policy) permissionHandler(_ net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	return ok && p.permit(ip)
}
