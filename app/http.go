package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/rs/zerolog"
)

// HTTP server limits. There is no read or write timeout on whole
// requests: a websocket is one long request. Headers must arrive quickly
// (against slow-header attacks) and idle keep-alive connections are
// reclaimed.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// webServer is the HTTP listener and its server.
type webServer struct {
	ln     net.Listener
	tls    *tls.Config // nil: plain HTTP
	mux    *portMux    // single-port mode: ln is shared (singleport.go)
	srv    *http.Server
	served chan struct{} // closed when Serve returns; nil until serve
	log    zerolog.Logger
	// headerTimeout bounds the arrival of a request's headers
	// (readHeaderTimeout; tests shorten it).
	headerTimeout time.Duration
}

// listen binds the HTTP port; with a certificate and key it will serve
// HTTPS.
func listen(addr, cert, key string, log zerolog.Logger) (*webServer, error) {
	var tc *tls.Config
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("app: HTTPS certificate: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"}}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("app: HTTP: %w", err)
	}
	return &webServer{ln: ln, tls: tc, log: log.With().Str("component", "http").Logger(), headerTimeout: readHeaderTimeout}, nil
}

// serve starts serving h in a goroutine that ends with shutdown.
func (w *webServer) serve(h http.Handler) {
	w.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: w.headerTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          log.New(errorLogWriter{w.log}, "", 0),
	}
	w.served = make(chan struct{})
	ln := w.ln
	switch {
	case w.mux != nil:
		ln = w.mux.http // TLS, if any, is handled as the connection is sniffed
	case w.tls != nil:
		w.srv.TLSConfig = w.tls
		ln = tls.NewListener(ln, w.tls)
	}
	go func() {
		defer close(w.served)
		if err := w.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			w.log.Error().Err(err).Msg("HTTP server stopped")
		}
	}()
}

// shutdown stops accepting, waits for requests in flight until ctx ends,
// then closes what is left.
func (w *webServer) shutdown(ctx context.Context) error {
	closeLn := w.ln.Close
	if w.mux != nil {
		closeLn = w.mux.close
	}
	if w.srv == nil {
		return closeLn()
	}
	err := w.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("app: HTTP shutdown: %w", err), w.srv.Close())
	}
	<-w.served
	if w.mux != nil {
		err = errors.Join(err, ignoreClosed(w.mux.close()))
	}
	return err
}

// ignoreClosed drops the error of closing what is already closed.
func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (w *webServer) addr() *net.TCPAddr { return w.ln.Addr().(*net.TCPAddr) }

// url names the listener. On every interface (0.0.0.0 or ::) people are
// shown "localhost", which works in any browser on this machine; clients
// get 127.0.0.1, which needs no name resolution.
func (w *webServer) url(dialable bool) string {
	a := w.addr()
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "localhost"
		if dialable {
			host = "127.0.0.1"
		}
	}
	scheme := "http://"
	if w.tls != nil {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// errorLogWriter puts net/http's own complaints (TLS handshakes, broken
// connections) into the log as warnings.
type errorLogWriter struct{ log zerolog.Logger }

func (e errorLogWriter) Write(p []byte) (int, error) {
	e.log.Warn().Msg(string(bytes.TrimSpace(p)))
	return len(p), nil
}
