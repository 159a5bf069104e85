package turnserver

import "errors"

// Sentinel errors of the package.
var (
	// ErrBadConfig is a Config that cannot work.
	ErrBadConfig = errors.New("turnserver: bad config")
	// ErrClosed is returned once the server is closed.
	ErrClosed = errors.New("turnserver: closed")
	// errTCPRelay refuses TCP allocations (RFC 6062): WebRTC needs none.
	errTCPRelay = errors.New("turnserver: TCP relays are not offered")
	// errFamily refuses an allocation of an address family with no relay IP.
	errFamily = errors.New("turnserver: no relay address of that family")
)
