package client

import (
	"errors"
	"fmt"
)

// Sentinel errors. A *ServerError matches the sentinel of its code with
// errors.Is, so callers test errors.Is(err, client.ErrForbidden).
var (
	// ErrClosed: the client's connection is closed.
	ErrClosed = errors.New("client: connection closed")
	// ErrSendQueueFull: the outgoing queue is full; the message was not sent.
	ErrSendQueueFull = errors.New("client: send queue full")
	// ErrBadLabel: a stream label other than camera or screen.
	ErrBadLabel = errors.New("client: stream label must be camera or screen")
	// ErrNoTracks: Publish was called without tracks.
	ErrNoTracks = errors.New("client: no tracks to publish")
	// ErrMedia: a media file could not be read.
	ErrMedia = errors.New("client: bad media file")
	// ErrUnreachable: no websocket could be opened to a node.
	ErrUnreachable = errors.New("client: node unreachable")
	// ErrTooManyRedirects: nodes kept sending the client elsewhere.
	ErrTooManyRedirects = errors.New("client: too many redirects")
	// ErrClassEnded: the class was ended for everyone (close 4010);
	// joining again would open a new one.
	ErrClassEnded = errors.New("client: the class has ended")

	// Server error codes (docs/protocol.md, "Error codes").
	ErrBadRequest  = errors.New("bad_request")
	ErrUnknownType = errors.New("unknown_type")
	ErrForbidden   = errors.New("forbidden")
	ErrNotFound    = errors.New("not_found")
	ErrBadSDP      = errors.New("bad_sdp")
	ErrConflict    = errors.New("conflict")
	ErrInternal    = errors.New("internal")
	// ErrRateLimited: chat faster than the participant's or the class's
	// rate; the message was not relayed.
	ErrRateLimited = errors.New("rate_limited")
)

var serverCodes = map[string]error{
	"bad_request":  ErrBadRequest,
	"unknown_type": ErrUnknownType,
	"forbidden":    ErrForbidden,
	"not_found":    ErrNotFound,
	"bad_sdp":      ErrBadSDP,
	"conflict":     ErrConflict,
	"internal":     ErrInternal,
	"rate_limited": ErrRateLimited,
}

// ServerError is an `error` message from the server.
type ServerError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("server error %s: %s", e.Code, e.Message)
}

// Is matches the sentinel of the error's code.
func (e *ServerError) Is(target error) bool {
	s, ok := serverCodes[e.Code]
	return ok && s == target
}

// CloseError is how the server closed the websocket.
type CloseError struct {
	Code int
	Text string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("connection closed by server: %d %s", e.Code, e.Text)
}

// Is makes every CloseError match ErrClosed.
func (e *CloseError) Is(target error) bool { return target == ErrClosed }

// RedirectError is a redirect received before welcome: the server sent
// the client from node From to the node at URL, then closed with
// CloseRedirect.
type RedirectError struct {
	URL    string
	Reason string
	From   string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("redirected from %s to %s (%s)", e.From, e.URL, e.Reason)
}

// Is makes a RedirectError match ErrClosed, like the close that follows it.
func (e *RedirectError) Is(target error) bool { return target == ErrClosed }

// CloseCode is CloseRedirect, so CloseCode(err) reads the same as after a
// redirect received while joined.
func (e *RedirectError) closeCode() int { return CloseRedirect }

// HTTPError is a non-success answer of the HTTP API.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("http status %d: %s", e.Status, e.Body)
}

// CloseCode returns the websocket close code carried by err, or 0.
func CloseCode(err error) int {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var re *RedirectError
	if errors.As(err, &re) {
		return re.closeCode()
	}
	return 0
}
