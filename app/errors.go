package app

import "errors"

// Sentinel errors of the node's life cycle.
var (
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("app: already started")
	// ErrClosed: the App was shut down, or failed to start (which shuts it down).
	ErrClosed = errors.New("app: shut down")
	// ErrNATS: the embedded NATS server did not start.
	ErrNATS = errors.New("app: embedded NATS server did not start")
	// errStopping is what /readyz reports once Shutdown began.
	errStopping = errors.New("shutting down")
	// errNATSDown is what /readyz reports while the NATS connection is down.
	errNATSDown = errors.New("NATS disconnected")
)
