package auth

import "errors"

// Sentinel errors. Callers map them to HTTP status and close codes in one
// place (signaling/errors.go).
var (
	// ErrMalformed: the token is not three base64url parts of JSON.
	ErrMalformed = errors.New("auth: malformed token")
	// ErrSignature: the signature does not match, or the algorithm is not HS256.
	ErrSignature = errors.New("auth: bad signature")
	// ErrExpired: the token's exp is in the past.
	ErrExpired = errors.New("auth: token expired")
	// ErrNotYetValid: the token's nbf is in the future (RFC 7519 section 4.1.5).
	ErrNotYetValid = errors.New("auth: token not yet valid")
	// ErrClaims: a required claim is missing or invalid.
	ErrClaims = errors.New("auth: invalid claims")
	// ErrSecretExposed: the secret file can be read by other users.
	ErrSecretExposed = errors.New("auth: secret file readable by other users")
	// ErrSecret: the signing secret is missing or too short.
	ErrSecret = errors.New("auth: secret missing or shorter than 32 bytes")
)
