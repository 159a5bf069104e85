package signaling

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"lectern/auth"
	"lectern/recording"
	"lectern/sfu"
)

// Sentinel errors. Every error a client can see is mapped to an HTTP status,
// a websocket close code or a protocol error code here and nowhere else.
var (
	// ErrNotImplemented is kept from the package's first contract; nothing
	// returns it any more.
	ErrNotImplemented = errors.New("signaling: not implemented")

	// ErrBadRequest: malformed JSON, a malformed payload or a bad field.
	ErrBadRequest = errors.New("bad request")
	// ErrUnknownType: the envelope names no known message type.
	ErrUnknownType = errors.New("unknown message type")
	// ErrForbidden: the role or a permission does not allow the request.
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: an unknown stream or participant.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a stream id already in use, a second stream of a label.
	ErrConflict = errors.New("conflict")
	// ErrInternal: the server failed; the client did nothing wrong.
	ErrInternal = errors.New("internal error")
	// ErrNoEngine: the server runs without a media engine.
	ErrNoEngine = errors.New("media engine unavailable")

	// ErrUnauthorized: a token that does not authenticate (bad, expired,
	// an invite used to join, or no join in time).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrOtherRoom: the token does not cover the class asked for.
	ErrOtherRoom = errors.New("token is for another class")
	// ErrBanned: the participant was removed from the class.
	ErrBanned = errors.New("removed from this class")
	// ErrBadName: a display name outside 1 to 64 characters.
	ErrBadName = errors.New("name must be 1 to 64 characters")
	// ErrClosedMode: the lobby is off (auth mode "tokens").
	ErrClosedMode = errors.New("classes are created with tokens minted elsewhere")
	// ErrUnsupportedMedia: a JSON body without a JSON content type.
	ErrUnsupportedMedia = errors.New("content type must be application/json")
	// ErrBodyTooLarge: a request body over the limit.
	ErrBodyTooLarge = errors.New("request body too large")

	// ErrShuttingDown: the server is stopping.
	ErrShuttingDown = errors.New("server shutting down")
	// ErrTooBig: a websocket message over the read limit.
	ErrTooBig = errors.New("message too big")
	// ErrRateLimited: too many messages in one second.
	ErrRateLimited = errors.New("too many messages")
	// ErrTooManyStreams: the node has as many console streams open as it
	// serves (operator_stream.go).
	ErrTooManyStreams = errors.New("too many console streams")
	// ErrReplaced: the same participant joined from another connection.
	ErrReplaced = errors.New("joined from another connection")
	// ErrSlowConsumer: the client did not read its messages fast enough.
	ErrSlowConsumer = errors.New("client too slow to read its messages")
	// ErrLeft: the client sent leave.
	ErrLeft = errors.New("left")
	// ErrTokenExpired: the token's exp passed while it was in use; the
	// connection or session ends then (close 4001).
	ErrTokenExpired = errors.New("token expired")
	// ErrCoolingDown: a participant closed for flooding joins again too
	// soon (close 4008).
	ErrCoolingDown = errors.New("closed for flooding: wait before joining again")
	// ErrChatRate: chat over the participant's or the class's rate.
	ErrChatRate = errors.New("chat too fast: wait a moment")
	// ErrTooManySessions: a token holds as many WHEP sessions as allowed.
	ErrTooManySessions = errors.New("too many WHEP sessions for this token")
	// ErrTooManyJoins: too many invite exchanges from one invite or address.
	ErrTooManyJoins = errors.New("too many joins: try again later")
	// ErrTooManyChecks: too many connectivity check requests from one
	// address, or the node's probes or downloads are all in use.
	ErrTooManyChecks = errors.New("too many connectivity checks: try again later")
	// ErrBodyTimeout: a request body that did not arrive in time.
	ErrBodyTimeout = errors.New("request body not received in time")

	// WHIP and WHEP (RFC 9725).

	// ErrNotSDP: an offer without the application/sdp content type.
	ErrNotSDP = errors.New("content type must be application/sdp")
	// ErrNotSDPFrag: a PATCH without the trickle ICE content type (RFC 8840).
	ErrNotSDPFrag = errors.New("content type must be application/trickle-ice-sdpfrag")
	// ErrBadSDP: an offer or SDP fragment that cannot be parsed or used.
	ErrBadSDP = errors.New("malformed SDP")
	// ErrNoCodec: an offer with no codec Lectern forwards, or without the
	// codec the class is sent in.
	ErrNoCodec = errors.New("no supported codec")
	// ErrStaleICE: a PATCH for an ICE session that has been restarted
	// since (If-Match, RFC 9725 4.3.1).
	ErrStaleICE = errors.New("the ICE session has changed")

	// ErrRedirected: another node of the cluster serves the participant
	// (close 4307 after a redirect message, or HTTP 307).
	ErrRedirected = errors.New("served by another node")

	// ErrClassEnded: a teacher or operator ended the class for everyone
	// (close 4010, DELETE /api/rooms/{room}).
	ErrClassEnded = errors.New("the class has ended")

	// ErrRecordingOff: the node records nothing (no recordings directory).
	ErrRecordingOff = errors.New("recording is not enabled on this node")
)

// Close codes of the protocol (docs/protocol.md, "Close codes"), beyond
// the RFC 6455 section 7.4.1 codes gorilla names.
const (
	closeUnauthorized = 4001
	closeForbidden    = 4003
	closeRateLimited  = 4008
	closeReplaced     = 4009
	closeClassEnded   = 4010
	closeRedirected   = 4307
)

// httpStatus maps an error to the status of an HTTP answer.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, ErrUnauthorized), isAuthError(err):
		return http.StatusUnauthorized
	case errors.Is(err, ErrClosedMode), errors.Is(err, ErrForbidden),
		errors.Is(err, ErrOtherRoom), errors.Is(err, ErrBanned):
		return http.StatusForbidden
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrBadName), errors.Is(err, ErrBadSDP):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnsupportedMedia), errors.Is(err, ErrNotSDP), errors.Is(err, ErrNotSDPFrag):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, ErrNoCodec):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrStaleICE):
		return http.StatusPreconditionFailed
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrTooManySessions), errors.Is(err, ErrTooManyJoins), errors.Is(err, ErrTooManyChecks):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrBodyTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, ErrNotFound), errors.Is(err, recording.ErrNotFound), errors.Is(err, recording.ErrBadID):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrTooManyStreams):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrShuttingDown), errors.Is(err, ErrNoEngine), errors.Is(err, ErrRecordingOff):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// closeCode maps the reason a connection ends to its websocket close code.
func closeCode(err error) int {
	switch {
	case err == nil, errors.Is(err, ErrLeft):
		return websocket.CloseNormalClosure
	case errors.Is(err, ErrShuttingDown):
		return websocket.CloseGoingAway
	case errors.Is(err, ErrTooBig):
		return websocket.CloseMessageTooBig
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrTokenExpired), isAuthError(err):
		return closeUnauthorized
	case errors.Is(err, ErrOtherRoom), errors.Is(err, ErrBanned), errors.Is(err, ErrForbidden):
		return closeForbidden
	case errors.Is(err, ErrRateLimited), errors.Is(err, ErrCoolingDown):
		return closeRateLimited
	case errors.Is(err, ErrReplaced):
		return closeReplaced
	case errors.Is(err, ErrClassEnded):
		return closeClassEnded
	case errors.Is(err, ErrRedirected):
		return closeRedirected
	case errors.Is(err, ErrSlowConsumer):
		// RFC 6455 section 7.4.1: 1008 is the generic policy violation.
		return websocket.ClosePolicyViolation
	default:
		return websocket.CloseInternalServerErr
	}
}

// protocolCode maps a failed request to the `error` message's code.
func protocolCode(err error) string {
	switch {
	case errors.Is(err, ErrBadRequest):
		return "bad_request"
	case errors.Is(err, ErrUnknownType):
		return "unknown_type"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrNotFound), errors.Is(err, recording.ErrNotFound):
		return "not_found"
	case errors.Is(err, sfu.ErrBadSDP), errors.Is(err, sfu.ErrUnsupportedCodec),
		errors.Is(err, sfu.ErrBadCandidate), errors.Is(err, ErrBadSDP), errors.Is(err, ErrNoCodec):
		return "bad_sdp"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrChatRate):
		return "rate_limited"
	default:
		return "internal"
	}
}

// retryError is a refusal that says when to try again (Retry-After,
// RFC 9110 section 10.2.3).
type retryError struct {
	err  error
	wait time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// retryAfter wraps err with the wait before a retry.
func retryAfter(err error, wait time.Duration) error { return &retryError{err: err, wait: wait} }

// setRetryAfter sets Retry-After, in whole seconds rounded up, when err
// says when to retry.
func setRetryAfter(h http.Header, err error) {
	var re *retryError
	if errors.As(err, &re) {
		h.Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(re.wait.Seconds())))))
	}
}

// isAuthError reports whether err comes from verifying a token.
func isAuthError(err error) bool {
	return errors.Is(err, auth.ErrMalformed) || errors.Is(err, auth.ErrSignature) ||
		errors.Is(err, auth.ErrExpired) || errors.Is(err, auth.ErrNotYetValid) || errors.Is(err, auth.ErrClaims)
}

// clientMessage is the text shown to a client for err: the sentinel's own
// words for the errors above (a close reason too: 4008 says why), a
// generic one for anything internal so that no internal detail leaks.
func clientMessage(err error) string {
	if protocolCode(err) == "internal" && httpStatus(err) == http.StatusInternalServerError &&
		closeCode(err) == websocket.CloseInternalServerErr && !errors.Is(err, ErrNoEngine) {
		return ErrInternal.Error()
	}
	return err.Error()
}
