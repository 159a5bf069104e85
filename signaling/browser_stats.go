package signaling

import (
	"math"
	"time"
)

// The class page reports, every few seconds, what the browser's own
// statistics say of the teacher's video it receives (W3C webrtc-stats,
// inbound-rtp): frames decoded, freezes, and the jitter buffer's mean
// delay. The server keeps the latest report per connection and shows it
// in the operator console beside its own view from RTCP receiver reports.
const typeStats = "stats"

// Bounds of a stats report: far beyond any real class, and each a
// number a console can print.
const (
	maxFramesDecoded  = 1e10 // 30 fps for 10 years
	maxFreezes        = 1e7
	maxJitterBufferMs = 60_000
)

// statsData is the stats message's payload.
type statsData struct {
	Stream         string   `json:"stream"`
	FramesDecoded  *uint64  `json:"frames_decoded"`
	Freezes        *uint64  `json:"freezes"`
	JitterBufferMs *float64 `json:"jitter_buffer_ms"`
}

func (d *statsData) validate() error {
	if err := validRef(d.Stream); err != nil {
		return err
	}
	switch {
	case d.FramesDecoded == nil || *d.FramesDecoded > maxFramesDecoded:
		return badField("frames_decoded", "must be 0 to 1e10")
	case d.Freezes == nil || *d.Freezes > maxFreezes:
		return badField("freezes", "must be 0 to 1e7")
	case d.JitterBufferMs == nil || math.IsNaN(*d.JitterBufferMs) || *d.JitterBufferMs < 0 || *d.JitterBufferMs > maxJitterBufferMs:
		return badField("jitter_buffer_ms", "must be 0 to 60000")
	}
	return nil
}

// browserStats is a connection's latest report, as the console shows it.
type browserStats struct {
	Stream         string    `json:"stream"`
	FramesDecoded  uint64    `json:"frames_decoded"`
	Freezes        uint64    `json:"freezes"`
	JitterBufferMs float64   `json:"jitter_buffer_ms"`
	At             time.Time `json:"at"`
}

// reportStats keeps a connection's report. Reports are bounded by the
// connection's message rate limit and replace one another, so a client
// cannot make the server keep more than one.
func (c *conn) reportStats(d *statsData, now time.Time) {
	c.browser.Store(&browserStats{
		Stream: d.Stream, FramesDecoded: *d.FramesDecoded, Freezes: *d.Freezes,
		JitterBufferMs: *d.JitterBufferMs, At: now,
	})
}
