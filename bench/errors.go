package bench

import "errors"

// Sentinel errors; Main maps them to exit statuses in one place (exitCode).
var (
	// ErrUsage: bad flags or options.
	ErrUsage = errors.New("bench: bad usage")
	// ErrMedia: the clip could not be read.
	ErrMedia = errors.New("bench: bad media file")
	// ErrServer: the local server did not start or stopped early.
	ErrServer = errors.New("bench: local server")
	// ErrStatus: a WHIP or WHEP endpoint answered with an unexpected status.
	ErrStatus = errors.New("bench: unexpected HTTP status")
	// ErrPublish: the publisher could not connect.
	ErrPublish = errors.New("bench: publisher")
	// ErrNoStudent: no student received anything.
	ErrNoStudent = errors.New("bench: no student received media")
)
