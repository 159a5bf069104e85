package signaling

import (
	"net/http"

	"lectern/auth"
)

// checkResults are the values a test of the check may report.
var checkResults = map[string]bool{"ok": true, "blocked": true, "skipped": true}

// checkReport is what the check page reports: one result per test, the
// measured download rate, and whether a teacher or a student checked.
type checkReport struct {
	Role         string `json:"role"`
	WebSocket    string `json:"websocket"`
	UDP          string `json:"udp"`
	TCP          string `json:"tcp"`
	TURN         string `json:"turn"`
	Camera       string `json:"camera"`
	Microphone   string `json:"microphone"`
	DownloadKbps int64  `json:"download_kbps"`
}

// tests lists the report's results by test name, as /metrics labels them.
func (c checkReport) tests() [][2]string {
	return [][2]string{
		{"websocket", c.WebSocket}, {"udp", c.UDP}, {"tcp", c.TCP}, {"turn", c.TURN},
		{"camera", c.Camera}, {"microphone", c.Microphone},
	}
}

// validate checks every field: known results, a known role, a bounded rate.
func (c checkReport) validate() error {
	if c.Role != string(auth.RoleStudent) && c.Role != string(auth.RoleTeacher) {
		return badField("role", "must be student or teacher")
	}
	for _, t := range c.tests() {
		if !checkResults[t[1]] {
			return badField(t[0], "must be ok, blocked or skipped")
		}
	}
	if c.DownloadKbps < 0 || c.DownloadKbps > maxCheckKbps {
		return badField("download_kbps", "must be from 0 to 10000000")
	}
	return nil
}

// verdict is the path media would take, by the fallback order of the
// class page: UDP, then ICE-TCP, then TURN.
func (c checkReport) verdict() string {
	switch {
	case c.UDP == "ok":
		return "udp"
	case c.TCP == "ok":
		return "tcp"
	case c.TURN == "ok":
		return "turn"
	}
	return "none"
}

// checkReport: POST /api/check/report counts one check's results in
// /metrics and logs them once. 204.
func (s *Server) checkReport(w http.ResponseWriter, r *http.Request) {
	if err := s.check.allow(r); err != nil {
		writeError(w, err)
		return
	}
	var rep checkReport
	if err := s.readJSON(w, r, &rep); err != nil {
		writeError(w, err)
		return
	}
	if err := rep.validate(); err != nil {
		writeError(w, err)
		return
	}
	c := s.check
	for _, t := range rep.tests() {
		c.results.WithLabelValues(t[0], t[1]).Inc()
	}
	v := rep.verdict()
	c.verdicts.WithLabelValues(v).Inc()
	if rep.DownloadKbps > 0 {
		c.download.Observe(float64(rep.DownloadKbps) / 1000)
	}
	s.log.Info().Str("role", rep.Role).Str("verdict", v).Str("websocket", rep.WebSocket).
		Str("udp", rep.UDP).Str("tcp", rep.TCP).Str("turn", rep.TURN).
		Str("camera", rep.Camera).Str("microphone", rep.Microphone).
		Int64("download_kbps", rep.DownloadKbps).Msg("signaling: connectivity check reported")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
