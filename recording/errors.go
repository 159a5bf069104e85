package recording

import "errors"

// Sentinel errors of the recorder. Callers test them with errors.Is; the
// API layer maps them to HTTP statuses in one place.
var (
	// ErrDiskFull: a write failed because the disk is full (ENOSPC). The
	// recording stops; the class goes on.
	ErrDiskFull = errors.New("recording: disk full")
	// ErrWrite: writing the recording failed for another reason.
	ErrWrite = errors.New("recording: write failed")
	// ErrStopped: the recorder is stopped (or stopped itself after an error).
	ErrStopped = errors.New("recording: stopped")
	// ErrUnsupportedCodec: the track's codec cannot be recorded.
	ErrUnsupportedCodec = errors.New("recording: unsupported codec")
	// ErrCodecChanged: a reconnecting publisher sends another codec than
	// the one the file was started with; a new recording is needed.
	ErrCodecChanged = errors.New("recording: codec changed")
	// ErrNoTracks: Attach was called without a usable track.
	ErrNoTracks = errors.New("recording: no tracks")
	// ErrEmpty: the recorder stopped before any media was written (no
	// video keyframe arrived), so there is no file.
	ErrEmpty = errors.New("recording: nothing recorded")
	// ErrNotFound: no recording with that ID in the catalog.
	ErrNotFound = errors.New("recording: not found")
	// ErrBadID: a recording ID that is empty or not a safe file name.
	ErrBadID = errors.New("recording: bad recording ID")
	// ErrCorrupt: a file that Repair cannot read as Matroska/WebM.
	ErrCorrupt = errors.New("recording: corrupt file")
)
