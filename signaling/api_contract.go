package signaling

// This file is the contract the rest of Lectern codes against while the
// package is being built. Every exported name here is kept.

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"lectern/auth"
	"lectern/sfu"
)

// ErrNotImplemented is returned by contract stubs.
var ErrNotImplemented = errors.New("signaling: not implemented")

// AuthMode says who may mint tokens.
type AuthMode string

// Auth modes.
const (
	// AuthOpen lets the lobby create classes and mint their links.
	AuthOpen AuthMode = "open"
	// AuthTokens accepts only tokens minted elsewhere with the secret.
	AuthTokens AuthMode = "tokens"
)

// Options are everything a Server needs; cmd/ and tests build them.
type Options struct {
	Engine   *sfu.Engine
	Signer   *auth.Signer
	AuthMode AuthMode
	Logger   zerolog.Logger
	// Registry receives the server's Prometheus collectors.
	Registry *prometheus.Registry
	// Web holds the pages (index.html, room.html, assets/…).
	Web fs.FS
	// Ready reports an external dependency's readiness (NATS); nil means ready.
	Ready func() error
	// InviteTTL is how long lobby links stay valid (default 12h).
	InviteTTL time.Duration
}

// Server serves one node's classes.
type Server struct{}

// New builds a server.
func New(opts Options) (*Server, error) { return nil, ErrNotImplemented }

// Handler is the HTTP handler for every route.
func (s *Server) Handler() http.Handler { return http.NotFoundHandler() }

// Shutdown stops taking joins, tells connected clients, closes their peers.
func (s *Server) Shutdown(ctx context.Context) error { return nil }
