package signaling

import (
	"github.com/prometheus/client_golang/prometheus"

	"lectern/auth"
	"lectern/sfu"
)

// typeParticipantConnection tells teachers and operators how a
// participant's media reaches the node (docs/protocol.md).
const typeParticipantConnection = "participant_connection"

// connectionData is a participant's latest connected path: the candidate
// type and transport of its newest peer connection, e.g. "relay/tls".
type connectionData struct {
	ID         string `json:"id"`
	Connection string `json:"connection"`
}

// seesConnections: only teachers and operators are told how others
// connect; students learn nothing of each other's networks.
func seesConnections(role string) bool {
	return role == string(auth.RoleTeacher) || role == string(auth.RoleOperator)
}

// setPath records how pid's newest peer connection reached the node and
// tells the class's teachers and operators.
func (r *room) setPath(pid sfu.ParticipantID, p sfu.Path) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[pid]
	if m == nil || m.path == p.String() {
		return
	}
	m.path = p.String()
	msg := encode(typeParticipantConnection, "", connectionData{ID: m.info.ID, Connection: m.path})
	for _, o := range r.members {
		if seesConnections(o.info.Role) {
			o.conn.enqueue(msg)
		}
	}
}

// reportPath is setPath for a participant known by its class only (a
// WHEP viewer).
func (s *Server) reportPath(class sfu.RoomID, pid sfu.ParticipantID, p sfu.Path) {
	s.hub.mu.Lock()
	r := s.hub.rooms[class]
	s.hub.mu.Unlock()
	if r != nil {
		r.setPath(pid, p)
	}
}

// connectionsLocked lists the paths of the class's local participants,
// for a teacher's or operator's welcome.
func (r *room) connectionsLocked(me *member) map[string]string {
	if !seesConnections(me.info.Role) {
		return nil
	}
	out := map[string]string{}
	for _, m := range r.members {
		if m.path != "" && m.listed() {
			out[m.info.ID] = m.path
		}
	}
	return out
}

// pathCollector exposes the engine's connected peer connections by path:
// the share of students needing ICE-TCP or a relay, measured. The labels
// are bounded (four candidate types, three transports), never per
// participant.
type pathCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func newPathCollector(s *Server) *pathCollector {
	return &pathCollector{s: s, desc: prometheus.NewDesc("lectern_connections",
		"Connected client peer connections by the client's candidate type (host, srflx, prflx, relay) "+
			"and transport (udp, tcp; for the node's TURN relay: udp, tcp or tls).",
		[]string{"type", "transport"}, nil)}
}

// Describe sends the one descriptor.
func (c *pathCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect reads the engine's counts.
func (c *pathCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.opts.Engine == nil {
		return
	}
	for p, n := range c.s.opts.Engine.Paths() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), p.Type, p.Transport)
	}
}
