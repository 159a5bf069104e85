package app

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"lectern/sfu"
	"lectern/turnserver"
)

// turnSecret derives the TURN credentials' key from the service secret,
// so that a TURN password never doubles as anything a token is signed
// with; every node of a cluster derives the same one.
func turnSecret(secret []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	_, _ = mac.Write([]byte("lectern TURN credentials v1"))
	return mac.Sum(nil)
}

// startTURN starts the embedded TURN server when it is configured.
func (a *App) startTURN() error {
	if !a.cfg.TURN {
		return nil
	}
	tc, err := a.turnConfig()
	if err != nil {
		return err
	}
	if a.turn, err = turnserver.New(tc); err != nil {
		return fmt.Errorf("app: TURN: %w", err)
	}
	ad := &tc.Advertise
	addrs := a.turn.Addrs()
	ad.UDPPort, ad.TCPPort, ad.TLSPort = port(addrs.UDP), port(addrs.TCP), port(addrs.TLS)
	if mux := a.web.mux; mux != nil {
		// TURN over TCP, and over TLS on an HTTPS port, share the HTTP port.
		mux.setTURN(a.turn.ServeConn)
		ad.TCPPort = a.web.addr().Port
		if mux.tls != nil {
			ad.TLSPort = a.web.addr().Port
		}
	}
	if a.cfg.TURNTLSPublicPort > 0 {
		ad.TLSPort = a.cfg.TURNTLSPublicPort
	}
	a.turnAdvertise(ad)
	a.turn.SetAdvertise(*ad)
	return nil
}

// turnConfig builds the TURN server's configuration from the node's.
func (a *App) turnConfig() (turnserver.Config, error) {
	host, _, _ := net.SplitHostPort(a.cfg.HTTP)
	at := func(p int) string {
		if p < 0 {
			return ""
		}
		return net.JoinHostPort(host, strconv.Itoa(p))
	}
	log := a.log.With().Str("component", "turn").Logger()
	tc := turnserver.Config{
		Secret: a.turnKey, UDPAddr: at(a.cfg.TURNUDPPort), TCPAddr: at(a.cfg.TURNTCPPort),
		Allow: a.cfg.TURNAllowPrefixes(), MaxAllocations: a.cfg.TURNMaxAllocations,
		TTL: a.cfg.TURNCredentialTTL, Logger: log,
		// pion's TURN server logs a failed relayed write per packet (a
		// client gone mid-stream): at most a burst a second reaches the log.
		LoggerFactory: sfu.NewLoggerFactory(log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second}), zerolog.WarnLevel),
	}
	if a.cfg.SinglePort {
		// TURN's TCP and TLS come through the HTTP port (singleport.go).
		tc.TCPAddr = ""
		a.relayConfig(&tc)
		return tc, nil
	}
	if cert, key := a.cfg.TURNCert(); cert != "" && a.cfg.TURNTLSPort >= 0 {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return tc, fmt.Errorf("app: TURN certificate: %w", err)
		}
		tc.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
		tc.TLSAddr = at(a.cfg.TURNTLSPort)
	}
	a.relayConfig(&tc)
	return tc, nil
}

// relayConfig sets where relays bind and what they may reach. Behind a
// 1:1 NAT (a public IP that is not the host's) relayed media for the
// public address goes straight to the local one (turnserver.Config.Hairpin).
func (a *App) relayConfig(tc *turnserver.Config) {
	tc.Own, tc.Ports = a.mediaAddrs()
	relay := a.relayIP()
	tc.RelayIP, tc.RelayIP6 = relayFamilies(relay)
	public, err := netip.ParseAddr(a.cfg.PublicIP)
	if err != nil || slices.Contains(localAddrs(), public.Unmap()) {
		return
	}
	if local, ok := netip.AddrFromSlice(relay); ok && local.Unmap().Is4() == public.Unmap().Is4() {
		tc.Hairpin = map[netip.Addr]netip.Addr{public.Unmap(): local.Unmap()}
	}
}

// relayFamilies puts ip where its family goes.
func relayFamilies(ip net.IP) (v4, v6 net.IP) {
	if ip.To4() != nil {
		return ip, nil
	}
	return nil, ip
}

// mediaAddrs are the addresses and ports the media plane is reached at:
// relays may always reach those.
func (a *App) mediaAddrs() ([]netip.Addr, []int) {
	u := a.engine.UDPAddr()
	var own []netip.Addr
	if ip, ok := netip.AddrFromSlice(u.IP); ok && !ip.IsUnspecified() {
		own = append(own, ip.Unmap())
	} else {
		own = append(own, localAddrs()...)
	}
	if ip, err := netip.ParseAddr(a.cfg.PublicIP); err == nil {
		own = append(own, ip.Unmap())
	}
	return own, []int{u.Port}
}

// relayIP is where relay sockets bind: configured, else the media
// plane's own address when it is bound to one, else the host's first
// non-loopback IPv4 address (the media plane, bound to all, reaches it).
func (a *App) relayIP() net.IP {
	if a.cfg.TURNRelayIP != "" {
		return net.ParseIP(a.cfg.TURNRelayIP)
	}
	if u := a.engine.UDPAddr(); !u.IP.IsUnspecified() {
		return u.IP
	}
	for _, ip := range localAddrs() {
		if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			return ip.AsSlice()
		}
	}
	return net.IPv4(127, 0, 0, 1)
}

// turnAdvertise fills in the host of the URLs handed out.
func (a *App) turnAdvertise(ad *turnserver.Advertise) {
	ad.Host = a.cfg.TURNHost
	if ad.Host == "" {
		ad.Host = a.cfg.PublicIP
	}
}

// localAddrs lists this host's interface addresses.
func localAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// port is a listener address's port, 0 for none.
func port(a net.Addr) int {
	switch v := a.(type) {
	case *net.UDPAddr:
		return v.Port
	case *net.TCPAddr:
		return v.Port
	}
	return 0
}

// relayTransport tells the media plane how a client reaches a relay
// address of the node's TURN server (sfu.Config.RelayTransport).
func (a *App) relayTransport(addr netip.AddrPort) string {
	if a.turn == nil {
		return ""
	}
	return a.turn.RelayTransport(addr)
}

// turnCollector exposes the TURN server's counters in /metrics.
type turnCollector struct {
	s                                 *turnserver.Server
	active, allocs, quota, auth, perm *prometheus.Desc
}

func newTURNCollector(s *turnserver.Server) *turnCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("lectern_turn_"+name, help, nil, nil)
	}
	return &turnCollector{s: s,
		active: d("allocations", "Live TURN allocations."),
		allocs: d("allocations_total", "TURN allocations made."),
		quota:  d("allocations_refused_total", "TURN allocations refused: the participant's limit was reached (486)."),
		auth:   d("auth_failures_total", "TURN requests refused for expired or wrong credentials."),
		perm:   d("permissions_refused_total", "TURN permissions refused for a peer in a denied range (403)."),
	}
}

// Describe sends the descriptors.
func (c *turnCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.active, c.allocs, c.quota, c.auth, c.perm} {
		ch <- d
	}
}

// Collect reads the server's counters.
func (c *turnCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(st.Active))
	for d, v := range map[*prometheus.Desc]uint64{c.allocs: st.Allocations, c.quota: st.RefusedQuota,
		c.auth: st.AuthFailed, c.perm: st.PermissionsRefused} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
}
