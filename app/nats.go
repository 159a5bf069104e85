package app

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// natsReadyTimeout bounds the embedded server's start (JetStream recovers
// its store first, which is quick for the little Lectern keeps there).
const natsReadyTimeout = 10 * time.Second

// embeddedNATS is the in-process NATS server and this node's connection to it.
type embeddedNATS struct {
	server *server.Server
	conn   *nats.Conn
	closed chan struct{} // closed by nats.go once conn is closed
}

// startNATS runs nats-server inside the process with no listener at all:
// the node talks to it over an in-memory pipe (nats.InProcessServer), so a
// single node needs no NATS port open and nothing to configure.
func startNATS(storeDir string, log zerolog.Logger) (*embeddedNATS, error) {
	ns, err := server.NewServer(&server.Options{
		ServerName: "lectern",
		DontListen: true,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true, // the process's signals belong to cmd/lectern
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNATS, err)
	}
	ns.SetLoggerV2(natsLogger{log: natsLog(log)}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(natsReadyTimeout) {
		stopServer(ns)
		return nil, fmt.Errorf("%w: not ready after %v", ErrNATS, natsReadyTimeout)
	}
	e := &embeddedNATS{server: ns, closed: make(chan struct{})}
	e.conn, err = nats.Connect("", nats.InProcessServer(ns), nats.Name("lectern"),
		nats.MaxReconnects(-1), // the server is in this process: it comes back or the process ends
		nats.ClosedHandler(func(*nats.Conn) { close(e.closed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own drain or close
				log.Warn().Err(err).Msg("NATS connection lost")
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info().Msg("NATS connection restored") }),
	)
	if err != nil {
		stopServer(ns)
		return nil, fmt.Errorf("%w: connect: %v", ErrNATS, err)
	}
	return e, nil
}

// ready reports whether the connection is up, for /readyz.
func (e *embeddedNATS) ready() error {
	if !e.conn.IsConnected() {
		return errNATSDown
	}
	return nil
}

// stop drains the connection (pending messages are delivered and
// subscriptions end cleanly) and stops the server. When ctx ends
// first the connection is closed outright.
func (e *embeddedNATS) stop(ctx context.Context) error {
	var err error
	if derr := e.conn.Drain(); derr != nil {
		e.conn.Close()
	}
	select {
	case <-e.closed:
	case <-ctx.Done():
		err = fmt.Errorf("app: NATS drain: %w", ctx.Err())
		e.conn.Close()
		<-e.closed
	}
	stopServer(e.server)
	return err
}

func stopServer(ns *server.Server) {
	ns.Shutdown()
	ns.WaitForShutdown()
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
