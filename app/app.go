// Package app wires one Lectern node: the data directory and its secret,
// an embedded NATS server, the media engine (sfu), the classroom server
// (signaling) and the HTTP listener. It is built from a config.Config by
// cmd/lectern and by whole-server tests.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"lectern/auth"
	"lectern/config"
	"lectern/sfu"
	"lectern/signaling"
	"lectern/turnserver"
	"lectern/web"
)

// App is one node. Start it once, Shutdown it once (further calls are
// harmless).
//
// Lock order: App.mu only; it is held for the whole of Start and of
// Shutdown, so the two never interleave, and never taken by the readiness
// check, which reads the atomic stopping flag instead.
type App struct {
	cfg config.Config
	log zerolog.Logger

	mu       sync.Mutex
	started  bool
	closed   bool
	closeErr error
	stopping atomic.Bool

	signer *auth.Signer
	nats   *natsNode
	engine *sfu.Engine
	load   atomic.Pointer[signaling.Server] // for the cluster's load reports
	clu    clusterJoin
	sig    *signaling.Server
	web    *webServer
	// turn is the embedded TURN server (nil: off); turnKey keys its
	// credentials.
	turn    *turnserver.Server
	turnKey []byte
}

// New checks cfg and returns an App that has not started anything yet.
func New(cfg config.Config, log zerolog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &App{cfg: cfg, log: log}, nil
}

// Start brings the node up; when it fails, everything it started is
// stopped again and the App is closed.
func (a *App) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed:
		return ErrClosed
	case a.started:
		return ErrStarted
	}
	a.started = true
	if err := a.start(); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		defer cancel()
		a.closed = true // a later Shutdown has nothing left to do
		return errors.Join(err, a.teardown(ctx))
	}
	a.log.Info().Object("config", a.cfg).Str("url", a.URL()).
		Stringer("ice_udp", a.engine.UDPAddr()).Stringer("ice_tcp", tcpAddr(a.engine)).
		Msg("lectern started")
	a.warnIfOpenToAll()
	return nil
}

func (a *App) start() error {
	if err := os.MkdirAll(a.cfg.Data, 0o700); err != nil {
		return fmt.Errorf("app: data directory: %w", err)
	}
	if err := a.loadSigner(); err != nil {
		return err
	}
	// Bind the HTTP port before starting anything heavier, so a port in
	// use fails at once with the plainest possible error.
	var err error
	if a.web, err = listen(a.cfg.HTTP, a.cfg.TLSCert, a.cfg.TLSKey, a.log); err != nil {
		return err
	}
	if a.cfg.SinglePort {
		a.web.mux = newPortMux(a.web.ln, a.web.tls, a.log.With().Str("component", "singleport").Logger())
	}
	if a.nats, err = startNATS(a.cfg, a.web.addr(), a.log); err != nil {
		return err
	}
	a.engine, err = sfu.NewEngine(sfu.Config{
		TCPListener: a.iceTCPListener(),
		UDPPort:     a.cfg.UDPPort,
		TCPPort:     a.cfg.TCPPort,
		PublicIP:    a.cfg.PublicIP,
		Logger:      a.log.With().Str("component", "sfu").Logger(),
		// The TURN server starts after the engine (it needs the media
		// addresses), before any client can connect.
		RelayTransport: a.relayTransport,
	})
	if err != nil {
		return fmt.Errorf("app: media engine: %w", err)
	}
	if err := a.startTURN(); err != nil {
		return err
	}
	if a.sig, err = a.newSignaling(); err != nil {
		return err
	}
	a.load.Store(a.sig)
	a.web.serve(a.sig.Handler())
	a.startCluster()
	return nil
}

func (a *App) loadSigner() error {
	secret := []byte(a.cfg.Secret)
	if a.cfg.Secret == "" {
		var err error
		if secret, err = auth.LoadOrCreateSecret(a.cfg.SecretPath()); err != nil {
			return fmt.Errorf("app: secret: %w", err)
		}
		if err := auth.CheckSecretMode(a.cfg.SecretPath()); err != nil {
			a.log.Warn().Err(err).Msg("the token secret can be read by other users of this machine, who could then mint any token")
		}
	}
	signer, err := auth.NewSigner(secret)
	if err != nil {
		return fmt.Errorf("app: secret: %w", err)
	}
	a.signer = signer
	a.turnKey = turnSecret(secret)
	return nil
}

func (a *App) newSignaling() (*signaling.Server, error) {
	reg := prometheus.NewRegistry()
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newNodeCollector(a),
	}
	if a.turn != nil {
		cs = append(cs, newTURNCollector(a.turn))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("app: metrics: %w", err)
		}
	}
	sig, err := signaling.New(signaling.Options{
		Engine:             a.engine,
		Signer:             a.signer,
		AuthMode:           signaling.AuthMode(a.cfg.Auth),
		Logger:             a.log.With().Str("component", "signaling").Logger(),
		Audit:              signaling.NewAuditLog(a.log.With().Str("component", "audit").Logger()),
		Registry:           reg,
		Web:                web.FS(),
		Ready:              a.ready,
		InviteTTL:          a.cfg.InviteTTL,
		MaxStudents:        a.cfg.MaxStudents,
		MetricsClassLabels: a.cfg.MetricsClassLabels,
		Limits:             signalingLimits(a.cfg.Limits),
		PublicURL:          a.cfg.PublicURL,
		// Only trusted proxies' forwarded headers are believed.
		TrustedProxies: a.cfg.TrustedPrefixes(),
		TURN:           a.iceSource(),
		Recording: signaling.RecordingOptions{
			Dir: a.recordingsDir(), All: a.cfg.Record,
			Retention: a.cfg.RecordingRetention.Duration(), LinkTTL: a.cfg.LinkTTL(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("app: signaling: %w", err)
	}
	return sig, nil
}

// signalingLimits hands the configured limits to signaling.
func signalingLimits(l config.Limits) signaling.Limits {
	return signaling.Limits{
		WHEPPerToken: l.WHEPPerToken,
		ChatRate:     float64(l.ChatRate), ChatBurst: l.ChatBurst,
		ClassChatRate:   float64(l.ClassChatRate),
		FloodCooldown:   l.FloodCooldown,
		NoFloodCooldown: l.FloodCooldown == 0,
		JoinRateInvite:  float64(l.JoinRateInvite), JoinRateIP: float64(l.JoinRateIP),
		CheckRateIP: float64(l.CheckRateIP),
	}
}

// ready is the readiness check handed to signaling for /readyz.
func (a *App) ready() error {
	if a.stopping.Load() {
		return errStopping
	}
	return a.nats.ready()
}

// warnIfOpenToAll says loudly that, in open mode on a reachable address,
// anyone can create classes: the default is made for trying Lectern out
// on one machine, not for the internet.
func (a *App) warnIfOpenToAll() {
	if a.cfg.Auth != config.AuthOpen || a.web.addr().IP.IsLoopback() {
		return
	}
	a.log.Warn().Str("http", a.cfg.HTTP).
		Msg("auth is open and HTTP listens beyond this machine: ANYONE WHO CAN REACH THIS SERVER CAN CREATE CLASSES. " +
			"Use --auth tokens, or --http 127.0.0.1:8080 behind a proxy that checks who may teach")
}

// Shutdown stops the node: readiness turns off, classes are told and
// closed, HTTP stops, then the media engine and NATS. It is idempotent and
// returns the first call's result; when ctx ends first, what remains is
// closed at once.
func (a *App) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return a.closeErr
	}
	a.closed = true
	a.closeErr = a.teardown(ctx)
	if a.closeErr == nil {
		a.log.Info().Msg("lectern stopped")
	}
	return a.closeErr
}

// teardown stops whatever start got to, in the reverse order of need.
func (a *App) teardown(ctx context.Context) error {
	a.stopping.Store(true)
	var errs []error
	a.clu.cancelJoin()
	if a.sig != nil {
		errs = append(errs, a.sig.Shutdown(ctx))
	}
	if a.web != nil {
		errs = append(errs, a.web.shutdown(ctx))
	}
	errs = append(errs, a.clu.stop())
	if a.turn != nil {
		errs = append(errs, a.turn.Close())
	}
	if a.engine != nil {
		errs = append(errs, a.engine.Close())
	}
	if a.nats != nil {
		errs = append(errs, a.nats.stop(ctx))
	}
	return errors.Join(errs...)
}

// URL is the address to print for people: http://localhost:PORT when the
// server listens on every interface. Empty before Start.
func (a *App) URL() string {
	if a.web == nil {
		return ""
	}
	return a.web.url(false)
}

// BaseURL is a dialable address for clients and tests on this machine:
// http://127.0.0.1:PORT when the server listens on every interface.
func (a *App) BaseURL() string {
	if a.web == nil {
		return ""
	}
	return a.web.url(true)
}

// Addr is the bound HTTP address, nil before Start.
func (a *App) Addr() *net.TCPAddr {
	if a.web == nil {
		return nil
	}
	return a.web.addr()
}

// iceTCPListener is the HTTP port's ICE-TCP side in single-port mode,
// nil otherwise (the engine listens on its own TCP port).
func (a *App) iceTCPListener() net.Listener {
	if a.web.mux == nil {
		return nil
	}
	return a.web.mux.ice
}

// iceSource is the TURN server as signaling sees it (a nil interface,
// not a typed nil, when TURN is off).
func (a *App) iceSource() signaling.ICESource {
	if a.turn == nil {
		return nil
	}
	return a.turn
}

// TURN is the embedded TURN server, nil when off.
func (a *App) TURN() *turnserver.Server { return a.turn }

// Signer mints and verifies tokens under the node's secret.
func (a *App) Signer() *auth.Signer { return a.signer }

// Engine is the media engine.
func (a *App) Engine() *sfu.Engine { return a.engine }

// NATS is the node's connection to its NATS server.
func (a *App) NATS() *nats.Conn {
	if a.nats == nil {
		return nil
	}
	return a.nats.conn
}

// Handler is the node's HTTP handler (nil before Start).
func (a *App) Handler() http.Handler {
	if a.sig == nil {
		return nil
	}
	return a.sig.Handler()
}

// tcpAddr avoids logging a typed nil when ICE-TCP is disabled.
func tcpAddr(e *sfu.Engine) fmt.Stringer {
	if a := e.TCPAddr(); a != nil {
		return a
	}
	return stringer("disabled")
}

type stringer string

func (s stringer) String() string { return string(s) }
