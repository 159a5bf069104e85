package sfu

import (
	"net"

	"github.com/pion/webrtc/v4"
)

// netPlan decides where the ICE sockets bind and which candidates are
// gathered.
type netPlan struct {
	bind     net.IP // nil: all addresses
	udpNet   string // "udp", "udp4" or "udp6"
	tcpNet   string
	v4, v6   bool
	loopback bool              // gather loopback addresses
	filter   func(net.IP) bool // nil: every address
}

// planNetwork follows the public IP when there is one: only its address
// family is gathered (so no candidate of the other family escapes the
// rewrite to the public IP), and when the public IP is one of this host's
// own addresses (a public interface, or 127.0.0.1 in tests) the sockets
// bind to exactly that address, so ICE-TCP gathers one candidate on the
// address clients actually reach. Without a public IP every non-loopback
// address of both families is offered; loopback is used only on a host
// that has nothing else.
func planNetwork(publicIP net.IP) netPlan {
	addrs := localIPs()
	if publicIP == nil {
		p := netPlan{udpNet: "udp", tcpNet: "tcp", v4: true, v6: true, loopback: true}
		for _, a := range addrs {
			if !a.IsLoopback() && !a.IsLinkLocalUnicast() {
				p.loopback = false
			}
		}
		return p
	}
	p := netPlan{udpNet: "udp4", tcpNet: "tcp4", v4: true, bind: net.IPv4zero}
	if publicIP.To4() == nil {
		p = netPlan{udpNet: "udp6", tcpNet: "tcp6", v6: true, bind: net.IPv6unspecified}
	}
	p.loopback = publicIP.IsLoopback()
	for _, a := range addrs {
		if a.Equal(publicIP) {
			p.bind = publicIP
			p.loopback = p.loopback || a.IsLoopback()
			p.filter = func(ip net.IP) bool { return ip.Equal(publicIP) }
		}
	}
	return p
}

// types lists the ICE network types to gather.
func (p netPlan) types(tcp bool) []webrtc.NetworkType {
	var t []webrtc.NetworkType
	if p.v4 {
		t = append(t, webrtc.NetworkTypeUDP4)
		if tcp {
			t = append(t, webrtc.NetworkTypeTCP4)
		}
	}
	if p.v6 {
		t = append(t, webrtc.NetworkTypeUDP6)
		if tcp {
			t = append(t, webrtc.NetworkTypeTCP6)
		}
	}
	return t
}

// localIPs lists this host's interface addresses (none on error: the plan
// then binds to all addresses, which is always safe).
func localIPs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	ips := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ips = append(ips, n.IP)
		}
	}
	return ips
}
