package sfu

// Lock order: Engine.mu guards the peer registry only. It is never held
// while closing a peer: Close snapshots the registry, releases the lock,
// then closes each peer (which calls back into forget, taking Engine.mu).

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// gatherTimeout bounds ICE gathering. With one muxed UDP port and one TCP
// port gathering is immediate; the bound only guards against a stuck
// agent holding a signaling request forever.
const gatherTimeout = 5 * time.Second

// Config configures an Engine. It is filled in cmd/ from the process Config.
type Config struct {
	// UDPPort is the one UDP port carrying every client's ICE traffic (0: any
	// free port); pullers (NewPuller) gather on ephemeral ports.
	UDPPort int
	// TCPPort is the ICE-TCP fallback port (0: any free port, -1: disabled).
	TCPPort int
	// PublicIP, when set, is the only address put in ICE candidates.
	PublicIP string
	// Logger receives the engine's logs; pion's logs are bridged into it.
	Logger zerolog.Logger
	// PionLogLevel is the lowest level of pion's own logs that reaches
	// Logger: a zerolog level name ("debug", "warn", ...). Empty means warn.
	PionLogLevel string
	// RelayTransport names the transport ("udp", "tcp", "tls") a client
	// reaches the TURN relay address addr over, "" if the address is not
	// the node's own TURN server's; nil: relays are reported as udp.
	RelayTransport func(addr netip.AddrPort) string
	// TCPListener, when set, carries ICE-TCP instead of a listener on
	// TCPPort: connections another listener found to be RFC 4571 framed
	// STUN (single-port mode). The engine closes it.
	TCPListener net.Listener
}

// validate checks the config and parses PublicIP (nil when unset).
func (c Config) validate() (net.IP, error) {
	if c.UDPPort < 0 || c.UDPPort > 65535 {
		return nil, fmt.Errorf("%w: UDP port %d", ErrBadConfig, c.UDPPort)
	}
	if c.TCPPort < -1 || c.TCPPort > 65535 {
		return nil, fmt.Errorf("%w: TCP port %d", ErrBadConfig, c.TCPPort)
	}
	if c.PionLogLevel != "" {
		if _, err := zerolog.ParseLevel(c.PionLogLevel); err != nil {
			return nil, fmt.Errorf("%w: pion log level %q", ErrBadConfig, c.PionLogLevel)
		}
	}
	if c.PublicIP == "" {
		return nil, nil
	}
	ip := net.ParseIP(c.PublicIP)
	if ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("%w: public IP %q", ErrBadConfig, c.PublicIP)
	}
	return ip, nil
}

// peer is a publisher or subscriber the engine closes on shutdown.
type peer interface{ Close() error }

// Engine owns the shared ICE sockets and the configured pion API.
type Engine struct {
	log     zerolog.Logger
	api     *webrtc.API // publishers: they send media to the server
	out     outTemplate // subscribers and viewers: they only send
	taps    rtcpTaps    // their RTCP, read past pion (direct.go)
	pullAPI *webrtc.API // pullers: the client side of a relay
	udpConn *batchConn
	udpMux  ice.UDPMux
	tcpMux  ice.TCPMux
	udpAddr *net.UDPAddr
	tcpAddr *net.TCPAddr
	pool    *packetPool
	writers *writerPool
	certs   certSource
	// stopReports ends reportLoop, which closes reportsDone.
	stopReports, reportsDone chan struct{}
	video                    []webrtc.RTPCodecParameters
	audio                    []webrtc.RTPCodecParameters
	stats                    counters
	trackSeq                 atomic.Uint64
	loopback                 bool // the node is on loopback: so may clients be (candidates.go)
	paths                    pathCounts
	relayTransport           func(netip.AddrPort) string

	mu     sync.Mutex
	closed bool
	peers  map[peer]struct{}
}

// NewEngine opens the ICE sockets and builds the pion API.
func NewEngine(cfg Config) (*Engine, error) {
	publicIP, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	level := zerolog.WarnLevel
	if cfg.PionLogLevel != "" {
		level, _ = zerolog.ParseLevel(cfg.PionLogLevel)
	}
	lf := newLoggerFactory(cfg.Logger, level)
	e := &Engine{log: cfg.Logger, pool: newPacketPool(), peers: map[peer]struct{}{}, relayTransport: cfg.RelayTransport}
	e.video, e.audio = engineCodecs()

	n := planNetwork(publicIP)
	e.loopback = n.loopback
	udp, err := net.ListenUDP(n.udpNet, &net.UDPAddr{IP: n.bind, Port: cfg.UDPPort})
	if err != nil {
		return nil, fmt.Errorf("sfu: listen ICE UDP: %w", err)
	}
	e.udpAddr = udp.LocalAddr().(*net.UDPAddr)
	// Every subscriber's packets leave through this one socket; batching
	// them into sendmmsg(2) calls saves a system call per packet.
	e.udpConn = newBatchConn(udp)
	e.udpConn.tap = e.taps.tap
	e.udpMux = webrtc.NewICEUDPMux(lf.NewLogger("udpmux"), e.udpConn)
	if err := e.listenTCP(cfg, n, lf); err != nil {
		_ = e.udpMux.Close()
		return nil, err
	}
	if err := e.buildAPI(lf, n, publicIP); err != nil {
		_ = e.closeSockets()
		return nil, err
	}
	e.writers = newWriterPool(runtime.GOMAXPROCS(0), e.udpConn)
	e.stopReports, e.reportsDone = make(chan struct{}), make(chan struct{})
	go e.reportLoop()
	e.log.Info().Stringer("udp", e.udpAddr).Str("public_ip", cfg.PublicIP).Msg("media engine listening")
	return e, nil
}

// listenTCP opens the ICE-TCP mux: on cfg.TCPListener when given, else
// on its own port unless ICE-TCP is off.
func (e *Engine) listenTCP(cfg Config, n netPlan, lf *loggerFactory) error {
	ln := cfg.TCPListener
	if ln == nil {
		if cfg.TCPPort < 0 {
			return nil
		}
		tcp, err := net.ListenTCP(n.tcpNet, &net.TCPAddr{IP: n.bind, Port: cfg.TCPPort})
		if err != nil {
			return fmt.Errorf("sfu: listen ICE TCP: %w", err)
		}
		ln = tcp
	}
	a, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		_ = ln.Close()
		return fmt.Errorf("%w: ICE-TCP listener on %v", ErrBadConfig, ln.Addr())
	}
	e.tcpAddr = a
	e.tcpMux = webrtc.NewICETCPMux(lf.NewLogger("tcpmux"), ln, 32)
	return nil
}

// buildAPI configures the pion APIs: api for publishers (the full
// interceptor chain), out for peer connections that only send, pullAPI
// for this node's own pullers.
func (e *Engine) buildAPI(lf *loggerFactory, n netPlan, publicIP net.IP) error {
	// Left to itself, every ICE agent lists the host's interfaces into a
	// network of its own and keeps it, about 7 KB per peer connection. On
	// the shared sockets the addresses are those of the sockets, bound
	// once, so one list taken now serves every peer connection.
	ifaces, err := stdnet.NewNet()
	if err != nil {
		return fmt.Errorf("sfu: list network interfaces: %w", err)
	}
	shared, err := e.settingEngine(lf, n, publicIP, ifaces)
	if err != nil {
		return err
	}
	// A puller is the client side of a node-to-node connection. On the
	// shared port, two pullers from the same origin (a teacher's camera
	// and screen) would share one address pair, and each end's mux would
	// hand one connection's packets to the other: each gets its own port.
	own, err := e.settingEngine(lf, n, publicIP, nil)
	if err != nil {
		return err
	}
	if e.api, err = e.newAPI(lf, shared, newInterceptors); err != nil {
		return err
	}
	if e.out, err = e.newOutTemplate(lf, shared); err != nil {
		return err
	}
	e.pullAPI, err = e.newAPI(lf, own, newInterceptors)
	return err
}

// newAPI builds one pion API with a fresh media engine and the
// interceptors chain builds.
func (e *Engine) newAPI(lf *loggerFactory, se webrtc.SettingEngine, chain func(logging.LoggerFactory) (*interceptor.Registry, error)) (*webrtc.API, error) {
	reg, err := chain(lf)
	if err != nil {
		return nil, fmt.Errorf("sfu: interceptors: %w", err)
	}
	me, err := newMediaEngine(e.video, e.audio)
	if err != nil {
		return nil, fmt.Errorf("sfu: media engine: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg)), nil
}

// outTemplate is what every sending peer connection's API is built from:
// each gets an API of its own whose handshake hooks belong to it
// (direct.go), around one setting engine, media engine and interceptor
// registry. pion copies the media engine into every peer connection
// anyway, so an API per connection costs only its setting engine.
type outTemplate struct {
	se  webrtc.SettingEngine
	me  *webrtc.MediaEngine
	reg *interceptor.Registry
}

func (e *Engine) newOutTemplate(lf *loggerFactory, se webrtc.SettingEngine) (outTemplate, error) {
	reg, err := newOutInterceptors(lf)
	if err != nil {
		return outTemplate{}, fmt.Errorf("sfu: interceptors: %w", err)
	}
	me, err := newMediaEngine(e.video, e.audio)
	if err != nil {
		return outTemplate{}, fmt.Errorf("sfu: media engine: %w", err)
	}
	return outTemplate{se: se, me: me, reg: reg}, nil
}

// newOutPeerConnection builds a sending peer connection whose media out
// will carry once the connection is up. Only the DTLS server learns the
// keys direct.go needs, so when the engine answers (WHEP) it answers as
// the server, "passive" (RFC 5763 5), unless the offer already took that
// role (offerPassive); when it offers, browsers answer "active".
func (e *Engine) newOutPeerConnection(out *directOut, offerPassive bool) (*webrtc.PeerConnection, error) {
	se := e.out.se
	out.settings(&se)
	if !offerPassive {
		if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
			return nil, fmt.Errorf("sfu: DTLS role: %w", err)
		}
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(e.out.me),
		webrtc.WithInterceptorRegistry(e.out.reg))
	// A down track sends no header extension (their IDs are negotiated
	// per connection, RFC 8285 6), so header encryption (RFC 9335) would
	// have nothing to hide, and the direct way seals without it.
	pc, err := e.newPeerConnectionWith(api, webrtc.Configuration{
		RTPHeaderEncryptionPolicy: webrtc.RTPHeaderEncryptionPolicyDisable,
	})
	if err != nil {
		return nil, err
	}
	out.ice = pc.SCTP().Transport().ICETransport()
	out.ice.OnSelectedCandidatePairChange(out.onPair)
	return pc, nil
}

// settingEngine is pion's configuration for this node's network: on the
// shared ICE sockets (shared, the host's interfaces, is not nil) or on a
// port of the connection's own.
func (e *Engine) settingEngine(lf *loggerFactory, n netPlan, publicIP net.IP, shared transport.Net) (webrtc.SettingEngine, error) {
	se := webrtc.SettingEngine{LoggerFactory: lf}
	muxed := shared != nil
	tcp := muxed && e.tcpMux != nil
	if muxed {
		se.SetICEUDPMux(e.udpMux)
		se.SetNet(shared)
	}
	if tcp {
		se.SetICETCPMux(e.tcpMux)
	}
	se.SetNetworkTypes(n.types(tcp))
	se.SetIncludeLoopbackCandidate(n.loopback)
	if n.filter != nil {
		se.SetIPFilter(n.filter)
	}
	// The server's addresses are not private: mDNS would only hide them
	// behind names browsers then fail to resolve.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// The server only accepts ICE-TCP (passive); it never dials clients.
	se.DisableActiveTCP(true)
	// RFC 7714 AEAD_AES_128_GCM first: authenticated encryption in one
	// pass, cheaper per packet than AES-CM with HMAC-SHA1.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	if publicIP != nil {
		// 1:1 NAT: every host candidate carries the public address instead
		// of the local one, so it is the only address clients see.
		err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        []string{publicIP.String()},
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		})
		if err != nil {
			return se, fmt.Errorf("%w: public IP: %v", ErrBadConfig, err)
		}
	}
	return se, nil
}

// UDPAddr is the bound ICE UDP address.
func (e *Engine) UDPAddr() *net.UDPAddr { return e.udpAddr }

// TCPAddr is the bound ICE-TCP address, nil when disabled.
func (e *Engine) TCPAddr() *net.TCPAddr { return e.tcpAddr }

// Stats returns counters summed over the engine's life.
func (e *Engine) Stats() Stats {
	s := e.stats.snapshot()
	// Datagrams the shared socket's send queue dropped are lost packets
	// too (batch.go).
	s.PacketsDropped += e.udpConn.Dropped()
	return s
}

// Close closes every peer connection and the shared sockets.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	peers := make([]peer, 0, len(e.peers))
	for p := range e.peers {
		peers = append(peers, p)
	}
	e.mu.Unlock()
	var errs []error
	for _, p := range peers {
		errs = append(errs, p.Close())
	}
	close(e.stopReports)
	<-e.reportsDone
	errs = append(errs, e.closeSockets())
	e.writers.close()
	return errors.Join(errs...)
}

func (e *Engine) closeSockets() error {
	var errs []error
	errs = append(errs, e.udpMux.Close())
	if e.tcpMux != nil {
		errs = append(errs, e.tcpMux.Close())
	}
	return errors.Join(errs...)
}

// register adds a live peer; it fails once the engine is closed.
func (e *Engine) register(p peer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.peers[p] = struct{}{}
	return nil
}

func (e *Engine) forget(p peer) {
	e.mu.Lock()
	delete(e.peers, p)
	e.mu.Unlock()
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// nextTrackID names a track uniquely within the engine.
func (e *Engine) nextTrackID(kind webrtc.RTPCodecType) TrackID {
	return TrackID(kind.String() + "-" + strconv.FormatUint(e.trackSeq.Add(1), 10))
}

// offerCodecs lists the engine's registrations that can carry a published
// codec, the best fit first (fmtpScore): the codec preferences of a
// subscriber's transceiver. The SFU cannot transcode, so no other codec is
// offered; but an H.264 stream is offered under every profile a browser
// may list, since browsers decode any profile and do not all list High
// (Debian's Chromium receives 42001f, 42e01f, 4d001f and f4001f only):
// the answer keeps those the browser has, and the down track goes as the
// closest of them (DownTrack.Bind).
func (e *Engine) offerCodecs(c webrtc.RTPCodecParameters, kind webrtc.RTPCodecType) []webrtc.RTPCodecParameters {
	list := e.audio
	if kind == webrtc.RTPCodecTypeVideo {
		list = e.video
	}
	var out []webrtc.RTPCodecParameters
	for {
		best, ok := matchCodec(c, list)
		if !ok {
			return out
		}
		out = append(out, best)
		rest := make([]webrtc.RTPCodecParameters, 0, len(list))
		for _, l := range list {
			if l.PayloadType != best.PayloadType {
				rest = append(rest, l)
			}
		}
		list = rest
	}
}

// waitGathering waits for ICE gathering to complete, so the description
// carries every candidate and clients need no trickle from the server.
func waitGathering(done <-chan struct{}) error {
	t := time.NewTimer(gatherTimeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return ErrGatherTimeout
	}
}
