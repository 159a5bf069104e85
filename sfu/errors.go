package sfu

import "errors"

// Sentinel errors of the media plane. Callers test them with errors.Is and
// map them to HTTP statuses or websocket close codes in one place (the
// signaling package); the sfu package never decides how they are shown.
var (
	// ErrClosed: the engine, publisher or subscriber is closed.
	ErrClosed = errors.New("sfu: closed")
	// ErrBadConfig: the engine configuration is invalid.
	ErrBadConfig = errors.New("sfu: bad config")
	// ErrBadSDP: an offer or answer could not be parsed or applied, or it
	// does not describe what the peer connection expects.
	ErrBadSDP = errors.New("sfu: bad session description")
	// ErrBadCandidate: a trickled ICE candidate was rejected.
	ErrBadCandidate = errors.New("sfu: bad ICE candidate")
	// ErrNoTracks: a subscriber was asked for with no tracks to forward.
	ErrNoTracks = errors.New("sfu: no tracks")
	// ErrUnsupportedCodec: a track's codec is not one the engine forwards.
	ErrUnsupportedCodec = errors.New("sfu: unsupported codec")
	// ErrGatherTimeout: ICE gathering did not complete in time.
	ErrGatherTimeout = errors.New("sfu: ICE gathering timed out")
	// ErrMalformedRTP: a received packet is not valid RTP.
	ErrMalformedRTP = errors.New("sfu: malformed RTP packet")
)

// errNoKeys: a sending connection's SRTP keys could not be learned from
// its DTLS handshake, so it keeps pion's write path (srtpkeys.go). Never
// returned to callers.
var errNoKeys = errors.New("sfu: SRTP keys not available")

// errNoPath: a packet of a connection whose media goes the direct way
// found no UDP pair to go to, and was dropped (direct.go).
var errNoPath = errors.New("sfu: connection has no UDP pair")
