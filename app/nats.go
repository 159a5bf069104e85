package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"lectern/config"
)

// NATS client timings. The connection never gives up: a node keeps
// forwarding the media already flowing while NATS is away, reports itself
// not ready, and picks up where it was when NATS is back (docs/scaling.md).
const (
	// natsReadyTimeout bounds the embedded server's start (JetStream
	// recovers its store first, which is quick for the little Lectern
	// keeps there).
	natsReadyTimeout = 10 * time.Second
	// natsReconnectWait is the pause between reconnection attempts.
	natsReconnectWait = 500 * time.Millisecond
	// natsPingInterval and natsMaxPingsOut notice a silent network
	// failure (no TCP reset) within about 6 s rather than nats.go's
	// default 4 minutes, so /readyz turns not ready in time.
	natsPingInterval = 2 * time.Second
	natsMaxPingsOut  = 3
	// natsConnectTimeout bounds one connection attempt to external NATS.
	natsConnectTimeout = 5 * time.Second
)

// natsNode is this node's NATS connection and, unless the node joins an
// external NATS cluster, the NATS server inside the process.
type natsNode struct {
	server    *server.Server // nil with external NATS
	conn      *nats.Conn
	closed    chan struct{} // closed by nats.go once conn is closed
	nodeID    string
	publicURL string
}

// startNATS brings up NATS as cfg says. httpAddr is the bound HTTP
// listener, from which the default node id and public URL derive.
func startNATS(cfg config.Config, httpAddr *net.TCPAddr, log zerolog.Logger) (*natsNode, error) {
	n := &natsNode{
		closed:    make(chan struct{}),
		nodeID:    nodeID(cfg, httpAddr),
		publicURL: publicURL(cfg, httpAddr),
	}
	log = log.With().Str("node", n.nodeID).Logger()
	opts := n.clientOptions(log)
	var err error
	if cfg.ExternalNATS() {
		opts = append(opts, externalOptions(cfg)...)
		n.conn, err = nats.Connect(strings.Join(cfg.NATS, ","), opts...)
		if err != nil {
			return nil, fmt.Errorf("%w: connect to %s: %v", ErrNATS, strings.Join(cfg.RedactedNATS(), ","), err)
		}
		log.Info().Str("nats", n.conn.ConnectedUrlRedacted()).Msg("joined the NATS cluster")
		return n, nil
	}
	if n.server, err = startServer(cfg, n.nodeID, log); err != nil {
		return nil, err
	}
	// The node talks to its own server over an in-memory pipe, even
	// when the server also listens for other processes.
	opts = append(opts, nats.InProcessServer(n.server))
	if n.conn, err = nats.Connect("", opts...); err != nil {
		stopServer(n.server)
		return nil, fmt.Errorf("%w: connect: %v", ErrNATS, err)
	}
	return n, nil
}

// clientOptions are the connection's options in both modes.
func (n *natsNode) clientOptions(log zerolog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name("lectern " + n.nodeID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(natsReconnectWait),
		nats.PingInterval(natsPingInterval),
		nats.MaxPingsOutstanding(natsMaxPingsOut),
		nats.ClosedHandler(func(*nats.Conn) { close(n.closed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own drain or close
				log.Warn().Err(err).Msg("NATS connection lost")
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info().Str("nats", c.ConnectedUrlRedacted()).Msg("NATS connection restored")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			ev := log.Warn().Err(err)
			if s != nil {
				ev = ev.Str("subject", s.Subject)
			}
			ev.Msg("NATS asynchronous error")
		}),
	}
}

// externalOptions are the credentials and TLS settings of external NATS.
func externalOptions(cfg config.Config) []nats.Option {
	opts := []nats.Option{nats.Timeout(natsConnectTimeout)}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSTLSCA))
	}
	if cfg.NATSTLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSTLSCert, cfg.NATSTLSKey))
	}
	return opts
}

// startServer runs nats-server inside the process with JetStream. Its
// store is <data>/nats/<node id>, so that nodes sharing a data directory
// (tests, several nodes on one machine) never share a store.
func startServer(cfg config.Config, nodeID string, log zerolog.Logger) (*server.Server, error) {
	opts, err := serverOptions(cfg, nodeID)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNATS, err)
	}
	ns.SetLoggerV2(natsLogger{log: natsLog(log)}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(natsReadyTimeout) {
		stopServer(ns)
		return nil, fmt.Errorf("%w: not ready after %v (is a NATS port in use?)", ErrNATS, natsReadyTimeout)
	}
	return ns, nil
}

// serverOptions translates cfg into nats-server's options.
//
// With routes, the embedded servers form one NATS cluster and JetStream
// runs clustered: that needs a server name unique in the cluster (the
// node id), a cluster name and the routes; the JetStream meta group then
// elects a leader once a majority of the servers is up.
func serverOptions(cfg config.Config, nodeID string) (*server.Options, error) {
	opts := &server.Options{
		ServerName: nodeID,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.Data, "nats", nodeID),
		NoSigs:     true, // the process's signals belong to cmd/lectern
	}
	switch {
	case cfg.NATSListen != "":
		host, port, err := hostPort(cfg.NATSListen)
		if err != nil {
			return nil, fmt.Errorf("%w: nats_listen: %v", ErrNATS, err)
		}
		opts.Host, opts.Port = host, port
	case cfg.NATSClusterListen != "":
		// nats-server starts routing only once its client listener is
		// up, so a clustered server needs one: loopback, any free port.
		opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	default:
		opts.DontListen = true // a single node needs no NATS port at all
	}
	if cfg.NATSClusterListen != "" {
		host, port, err := hostPort(cfg.NATSClusterListen)
		if err != nil {
			return nil, fmt.Errorf("%w: nats_cluster_listen: %v", ErrNATS, err)
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.NATSClusterName, Host: host, Port: port}
		// A node may list its own route too, so that every node can share
		// one list: nats-server recognises and drops a route to itself.
		opts.Routes = server.RoutesFromStr(strings.Join(cfg.NATSRoutes, ","))
	}
	return opts, nil
}

// hostPort splits a listen address; port 0 means any free port, which
// nats-server spells RANDOM_PORT (its 0 means "the default port").
func hostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// nodeID is the configured node id or one derived from the host name and
// the bound HTTP port.
func nodeID(cfg config.Config, httpAddr *net.TCPAddr) string {
	if cfg.NodeID != "" {
		return cfg.NodeID
	}
	host, _ := os.Hostname()
	return config.DeriveNodeID(host, httpAddr.Port)
}

// publicURL is the configured public URL or one derived from the bound
// HTTP address: its IP when bound to one, the host name when bound to
// every interface (other machines cannot reach "localhost").
func publicURL(cfg config.Config, httpAddr *net.TCPAddr) string {
	if cfg.PublicURL != "" {
		return strings.TrimSuffix(cfg.PublicURL, "/")
	}
	host := httpAddr.IP.String()
	if httpAddr.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		} else {
			host = "127.0.0.1"
		}
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(httpAddr.Port))
}

// ready reports whether the connection is up, for /readyz.
func (n *natsNode) ready() error {
	if !n.conn.IsConnected() {
		return errNATSDown
	}
	return nil
}

// stop drains the connection (pending messages are delivered and
// subscriptions end cleanly) and stops the embedded server, if any. When
// ctx ends first the connection is closed outright.
func (n *natsNode) stop(ctx context.Context) error {
	var err error
	if derr := n.conn.Drain(); derr != nil {
		n.conn.Close()
	}
	select {
	case <-n.closed:
	case <-ctx.Done():
		err = fmt.Errorf("app: NATS drain: %w", ctx.Err())
		n.conn.Close()
		<-n.closed
	}
	if n.server != nil {
		stopServer(n.server)
	}
	return err
}

func stopServer(ns *server.Server) {
	ns.Shutdown()
	ns.WaitForShutdown()
}

// NodeID is this node's name in the cluster ("" before Start).
func (a *App) NodeID() string {
	if a.nats == nil {
		return ""
	}
	return a.nats.nodeID
}

// PublicURL is the base URL other nodes send clients to ("" before Start).
func (a *App) PublicURL() string {
	if a.nats == nil {
		return ""
	}
	return a.nats.publicURL
}

// natsClientURL is the embedded server's client URL ("" when it listens
// only inside the process).
func (a *App) natsClientURL() string {
	if a.nats == nil || a.nats.server == nil || a.nats.server.Addr() == nil {
		return ""
	}
	return a.nats.server.ClientURL()
}

// natsLog is the logger nats-server writes to: only its warnings and
// errors reach Lectern's log; its notices describe its own start-up, which
// Lectern reports itself.
func natsLog(log zerolog.Logger) zerolog.Logger {
	l := log.With().Str("component", "nats").Logger()
	if l.GetLevel() < zerolog.WarnLevel {
		l = l.Level(zerolog.WarnLevel)
	}
	return l
}

// natsLogger bridges nats-server's Logger interface to zerolog.
type natsLogger struct{ log zerolog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Info().Msgf(format, v...) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Debug().Msgf(format, v...) }
func (l natsLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }

// Fatalf is logged as an error: the embedded server must never end the
// process; the failure surfaces through Start or /readyz instead.
func (l natsLogger) Fatalf(format string, v ...any) { l.log.Error().Msgf(format, v...) }
