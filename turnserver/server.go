package turnserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// Defaults of Config.
const (
	// DefaultRealm names the server in its challenges (RFC 8489 9.2).
	DefaultRealm = "lectern"
	// DefaultTTL is how long minted credentials stay valid.
	DefaultTTL = 2 * time.Hour
	// DefaultMaxAllocations is each participant's allocation limit: a
	// browser makes one per TURN URL and local interface for each of its
	// peer connections.
	DefaultMaxAllocations = 24
)

// Config configures a Server.
type Config struct {
	// Secret keys the credentials (at least 16 bytes).
	Secret []byte
	// Realm defaults to DefaultRealm.
	Realm string
	// UDPAddr, TCPAddr and TLSAddr are listen addresses ("" : none). TLS
	// needs TLS.
	UDPAddr, TCPAddr, TLSAddr string
	// TLS is the certificate configuration of TURN over TLS.
	TLS *tls.Config
	// RelayIP and RelayIP6 are the IPv4 and IPv6 addresses relay sockets
	// bind to (either may be nil); only this node's media plane reaches
	// them.
	RelayIP, RelayIP6 net.IP
	// Own are the node's media addresses and Ports its media ports: a
	// relay may reach them even where the deny list would refuse them.
	Own   []netip.Addr
	Ports []int
	// Allow are ranges the operator lets relays reach despite the deny list.
	Allow []netip.Prefix
	// Hairpin maps an own address that is not this host's (a 1:1 NAT's
	// public address) to a local one the media plane also listens on:
	// relayed datagrams to it go to the local address instead of out to
	// the NAT and back, and replies seem to come from it.
	Hairpin map[netip.Addr]netip.Addr
	// MaxAllocations per participant; 0 means DefaultMaxAllocations.
	MaxAllocations int
	// TTL of minted credentials; 0 means DefaultTTL.
	TTL time.Duration
	// Advertise says which URLs ICEServers hands out.
	Advertise Advertise
	// Logger receives the server's logs, LoggerFactory pion's.
	Logger        zerolog.Logger
	LoggerFactory logging.LoggerFactory
}

// Advertise are the ports and host put in the ICE server URLs (RFC 7065):
// a port of 0 leaves its URL out.
type Advertise struct {
	// Host is put in every URL; empty: the host the client reached the
	// node's HTTP listener at.
	Host                      string
	UDPPort, TCPPort, TLSPort int
}

// Server is a running TURN server.
type Server struct {
	cfg    Config
	log    zerolog.Logger
	srv    *turn.Server
	handed *connListener // connections handed over by ServeConn
	now    func() time.Time
	closed atomic.Bool
	addrs  Addrs
	ad     atomic.Pointer[Advertise]

	mu     sync.Mutex // leaf lock
	allocs map[string]int
	relays map[netip.AddrPort]string // relay address -> client transport
	tuples map[string]netip.AddrPort // client and server address -> relay address
	kinds  sync.Map                  // stream client address -> "tcp" or "tls"

	stats counters
}

// Addrs are the bound listen addresses (nil: not listening).
type Addrs struct {
	UDP, TCP, TLS net.Addr
}

// counters are what Stats reports.
type counters struct {
	allocations, refusedQuota, authFailed, permissionsRefused atomic.Uint64
}

// Stats are counters summed over the server's life.
type Stats struct {
	Allocations, RefusedQuota, AuthFailed, PermissionsRefused uint64
	// Active is the number of live allocations.
	Active int
}

func (c *Config) defaults() error {
	if len(c.Secret) < 16 {
		return fmt.Errorf("%w: secret shorter than 16 bytes", ErrBadConfig)
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.MaxAllocations <= 0 {
		c.MaxAllocations = DefaultMaxAllocations
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.TLSAddr != "" && c.TLS == nil {
		return fmt.Errorf("%w: TURN over TLS needs a certificate", ErrBadConfig)
	}
	if (c.RelayIP == nil && c.RelayIP6 == nil) || c.RelayIP.IsUnspecified() || c.RelayIP6.IsUnspecified() {
		return fmt.Errorf("%w: relay IP %v %v", ErrBadConfig, c.RelayIP, c.RelayIP6)
	}
	if (c.RelayIP != nil && c.RelayIP.To4() == nil) || (c.RelayIP6 != nil && c.RelayIP6.To4() != nil) {
		return fmt.Errorf("%w: relay IP %v %v: want IPv4 and IPv6", ErrBadConfig, c.RelayIP, c.RelayIP6)
	}
	if c.LoggerFactory == nil {
		c.LoggerFactory = logging.NewDefaultLoggerFactory()
	}
	return nil
}

// New opens the listeners and starts serving.
func New(cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: time.Now, allocs: map[string]int{},
		relays: map[netip.AddrPort]string{}, tuples: map[string]netip.AddrPort{}, handed: newConnListener()}
	pol := newPolicy(cfg.Own, cfg.Ports, cfg.Allow)
	pol.hairpin = cfg.Hairpin
	gen := &relayGen{ip4: cfg.RelayIP, ip6: cfg.RelayIP6, policy: pol}
	perm := func(src net.Addr, peer net.IP) bool {
		if pol.permissionHandler(src, peer) {
			return true
		}
		s.stats.permissionsRefused.Add(1)
		return false
	}
	sc := turn.ServerConfig{
		Realm: cfg.Realm, LoggerFactory: cfg.LoggerFactory,
		AuthHandler: s.authHandler, QuotaHandler: s.quota, EventHandler: s.events(),
	}
	closers, err := s.listen(&sc, gen, perm)
	if err == nil {
		s.srv, err = turn.NewServer(sc)
	}
	if err != nil {
		for _, c := range closers {
			_ = c()
		}
		return nil, fmt.Errorf("turnserver: %w", err)
	}
	s.SetAdvertise(cfg.Advertise)
	s.log.Info().Interface("listen", s.addrs).
		Interface("relay_ip", []net.IP{cfg.RelayIP, cfg.RelayIP6}).Msg("TURN server listening")
	return s, nil
}

// listen opens the configured sockets into sc, and returns what closes
// them if the server does not start.
func (s *Server) listen(sc *turn.ServerConfig, gen turn.RelayAddressGenerator, perm turn.PermissionHandler) ([]func() error, error) {
	var closers []func() error
	if s.cfg.UDPAddr != "" {
		pc, err := net.ListenPacket("udp", s.cfg.UDPAddr)
		if err != nil {
			return closers, fmt.Errorf("listen UDP: %w", err)
		}
		closers = append(closers, pc.Close)
		s.addrs.UDP = pc.LocalAddr()
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn: pc, RelayAddressGenerator: gen, PermissionHandler: perm})
	}
	lns := []net.Listener{track(s.handed, "tcp", &s.kinds)}
	for _, kind := range []string{"tcp", "tls"} {
		addr := map[string]string{"tcp": s.cfg.TCPAddr, "tls": s.cfg.TLSAddr}[kind]
		if addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return closers, fmt.Errorf("listen %s: %w", kind, err)
		}
		closers = append(closers, ln.Close)
		if kind == "tls" {
			s.addrs.TLS = ln.Addr()
			ln = tls.NewListener(ln, s.cfg.TLS)
		} else {
			s.addrs.TCP = ln.Addr()
		}
		lns = append(lns, track(ln, kind, &s.kinds))
	}
	for _, ln := range lns {
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener: ln, RelayAddressGenerator: gen, PermissionHandler: perm})
	}
	return closers, nil
}

// quota enforces the per-participant allocation limit (RFC 8656 7.2
// step 7: by username, not by transport address). The count moves in
// events, when pion has created or deleted the allocation.
func (s *Server) quota(userID, _ string, _ net.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.allocs[userID] >= s.cfg.MaxAllocations {
		s.stats.refusedQuota.Add(1)
		return false
	}
	return true
}

func (s *Server) events() turn.EventHandler {
	return turn.EventHandler{
		OnAuth: func(_, _ net.Addr, _, _, _, _ string, verdict bool) {
			if !verdict {
				s.stats.authFailed.Add(1)
			}
		},
		OnAllocationCreated: func(src, dst net.Addr, _, userID, _ string, relay net.Addr, _ int) {
			s.stats.allocations.Add(1)
			kind := "udp"
			if k, ok := s.kinds.Load(src.String()); ok {
				kind = k.(string)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			s.allocs[userID]++
			if ua, ok := relay.(*net.UDPAddr); ok {
				ap := netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
				s.relays[ap], s.tuples[src.String()+" "+dst.String()] = kind, ap
			}
		},
		OnAllocationDeleted: func(src, dst net.Addr, _, userID, _ string) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.allocs[userID]--; s.allocs[userID] <= 0 {
				delete(s.allocs, userID)
			}
			key := src.String() + " " + dst.String()
			delete(s.relays, s.tuples[key])
			delete(s.tuples, key)
		},
	}
}

// ICEServers mints the participant's credentials, valid until the
// earlier of until and the configured TTL from now, and returns them with
// the advertised URLs. host is the name the client reached the node by,
// used when no Host is configured.
func (s *Server) ICEServers(participant string, until time.Time, host string) []webrtc.ICEServer {
	exp := s.now().Add(s.cfg.TTL)
	if !until.IsZero() && until.Before(exp) {
		exp = until
	}
	user, pass := Credentials(s.cfg.Secret, participant, exp)
	urls := URLs(*s.ad.Load(), host)
	if len(urls) == 0 {
		return nil
	}
	return []webrtc.ICEServer{{URLs: urls, Username: user, Credential: pass,
		CredentialType: webrtc.ICECredentialTypePassword}}
}

// URLs are the TURN URLs (RFC 7065) of a, with host unless a names one.
func URLs(a Advertise, host string) []string {
	if a.Host != "" {
		host = a.Host
	}
	if host == "" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
		host = "[" + host + "]"
	}
	var urls []string
	if a.UDPPort > 0 {
		urls = append(urls, "turn:"+host+":"+strconv.Itoa(a.UDPPort)+"?transport=udp")
	}
	if a.TCPPort > 0 {
		urls = append(urls, "turn:"+host+":"+strconv.Itoa(a.TCPPort)+"?transport=tcp")
	}
	if a.TLSPort > 0 {
		urls = append(urls, "turns:"+host+":"+strconv.Itoa(a.TLSPort)+"?transport=tcp")
	}
	return urls
}

// ServeConn serves TURN on a stream connection another listener accepted
// (single-port mode): plain TCP, or TLS already handshaken. It does not
// wait for the connection to end.
func (s *Server) ServeConn(c net.Conn) error {
	if err := s.handed.push(c); err != nil {
		_ = c.Close()
		return err
	}
	return nil
}

// SetAdvertise changes the URLs ICEServers hands out from now on: the
// ports are known once the listeners are bound.
func (s *Server) SetAdvertise(a Advertise) { s.ad.Store(&a) }

// RelayTransport is the transport ("udp", "tcp" or "tls") over which the
// client of the allocation with relay address addr reaches this server,
// "" when no live allocation has it.
func (s *Server) RelayTransport(addr netip.AddrPort) string {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relays[addr]
}

// Addrs returns the bound listen addresses.
func (s *Server) Addrs() Addrs { return s.addrs }

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Allocations: s.stats.allocations.Load(), RefusedQuota: s.stats.refusedQuota.Load(),
		AuthFailed: s.stats.authFailed.Load(), PermissionsRefused: s.stats.permissionsRefused.Load(),
		Active: s.srv.AllocationCount(),
	}
}

// Close stops the server and ends every allocation.
func (s *Server) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := s.srv.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
