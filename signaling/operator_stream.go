package signaling

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// The console subscribes to GET /api/operator/stream: the same view as
// GET /api/operator, one JSON object per line (NDJSON) every
// consolePeriod, until the client goes, its token expires or the server
// stops. A page's fetch reads it with its Authorization header, which an
// EventSource could not send.
const (
	consolePeriod = 2 * time.Second
	// maxConsoleStreams bounds the open streams of a node: each costs a
	// walk of every class every consolePeriod.
	maxConsoleStreams = 32
	// consoleWriteTimeout drops a reader that stopped reading.
	consoleWriteTimeout = 10 * time.Second
)

// consoleStream serves GET /api/operator/stream.
func (s *Server) consoleStream(w http.ResponseWriter, r *http.Request) {
	claims, err := s.bearer(r)
	if err != nil {
		writeError(w, err)
		return
	}
	only, err := s.operatorScope(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if n := s.consoleStreams.Add(1); n > maxConsoleStreams {
		s.consoleStreams.Add(-1)
		writeError(w, fmt.Errorf("%w: %d open on this node", ErrTooManyStreams, maxConsoleStreams))
		return
	}
	defer s.consoleStreams.Add(-1)
	if !s.tasks.enter() {
		writeError(w, ErrShuttingDown)
		return
	}
	defer s.tasks.exit()
	expiry := time.NewTimer(time.Until(time.Unix(claims.Expiry, 0)))
	defer expiry.Stop()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // proxies pass each line at once
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(consolePeriod)
	defer tick.Stop()
	enc := json.NewEncoder(w)
	for now := time.Now(); ; {
		_ = rc.SetWriteDeadline(time.Now().Add(consoleWriteTimeout))
		if enc.Encode(s.console(only, now)) != nil || rc.Flush() != nil {
			return
		}
		select {
		case now = <-tick.C:
		case <-r.Context().Done():
			return
		case <-expiry.C:
			return
		case <-s.stopped:
			return
		}
	}
}
