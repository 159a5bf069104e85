package signaling

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"lectern/auth"
	"lectern/sfu"
)

// The operator console (/operator, web/operator.html) reads GET
// /api/operator every few seconds: the nodes of the cluster, the classes,
// and each participant on this node with its connection's figures from
// its receiver reports. An operator token for every class sees
// everything; one for a single class sees that class only, and no nodes.

// consoleView is one read of the console's data.
type consoleView struct {
	Node        string           `json:"node"`
	At          time.Time        `json:"at"`
	Nodes       []consoleNode    `json:"nodes"`
	Classes     []consoleClass   `json:"classes"`
	Connections []consoleConnOut `json:"connections"`
	Alerts      []consoleAlert   `json:"alerts"`
}

// consoleAlert is a condition an operator can act on, as the rules in
// deploy/prometheus/alerts.yml raise them from the metrics.
type consoleAlert struct {
	// Kind: class_bad_quality, node_near_capacity, nats_disconnected,
	// recording_failed, recording_disk_nearly_full.
	Kind string `json:"kind"`
	Node string `json:"node,omitempty"`
	Room string `json:"room,omitempty"`
	Text string `json:"text"`
}

// Console alert thresholds: those of the alerting rules.
const (
	nearCapacity      = 0.9
	recentRecFailures = 10 * time.Minute
	// diskNearlyFull is the share of the recordings' disk free below
	// which LecternRecordingDiskNearlyFull fires.
	diskNearlyFull = 0.1
)

type consoleNode struct {
	ID         string `json:"id"`
	URL        string `json:"url"`
	Version    string `json:"version"`
	Self       bool   `json:"self"`
	Liveness   string `json:"liveness"`
	NATS       string `json:"nats,omitempty"` // this node's own: connected or disconnected
	Students   int    `json:"students"`
	Classes    int    `json:"classes"`
	BitrateOut int64  `json:"bitrate_out"`
	Draining   bool   `json:"draining"`
	Capacity   int    `json:"capacity"`
}

type consoleClass struct {
	Room         string `json:"room"`
	Title        string `json:"title,omitempty"`
	Origin       string `json:"origin,omitempty"`
	Live         bool   `json:"live"`
	Recording    bool   `json:"recording"`
	Participants int    `json:"participants"` // the whole class, as this node knows it
	Local        int    `json:"local"`        // on this node
	BadStudents  int    `json:"bad_students"`
}

// consoleConnOut is one participant on this node. The figures are of its
// worst track, from the latest receiver report; BytesSent is cumulative,
// the page turns two reads into a bitrate.
type consoleConnOut struct {
	Room        string `json:"room"`
	Participant string `json:"participant"`
	Name        string `json:"name"`
	Role        string `json:"role"`
	Transport   string `json:"transport"`
	// Path is how its newest peer connection reached the node: the
	// client's candidate type and transport (paths.go), e.g. "relay/tls";
	// empty until one connected.
	Path      string  `json:"path,omitempty"`
	Verdict   string  `json:"verdict,omitempty"`
	Loss      float64 `json:"loss"`
	RTTMs     float64 `json:"rtt_ms"`
	JitterMs  float64 `json:"jitter_ms"`
	BytesSent uint64  `json:"bytes_sent"`
	Tracks    int     `json:"tracks"`
	// Browser is the page's own latest report; nil when it sent none.
	Browser *browserStats `json:"browser,omitempty"`
}

// operatorScope checks an operator token and returns the one class it is
// limited to ("" for every class).
func (s *Server) operatorScope(r *http.Request) (sfu.RoomID, error) {
	claims, err := s.bearer(r)
	if err != nil {
		return "", err
	}
	if claims.Role != auth.RoleOperator {
		return "", fmt.Errorf("%w: operators only", ErrForbidden)
	}
	if claims.Room == auth.AllRooms {
		return "", nil
	}
	return sfu.RoomID(claims.Room), nil
}

// consoleAPI serves GET /api/operator.
func (s *Server) consoleAPI(w http.ResponseWriter, r *http.Request) {
	only, err := s.operatorScope(r)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.console(only, time.Now()))
}

func (s *Server) console(only sfu.RoomID, now time.Time) consoleView {
	v := consoleView{At: now, Nodes: []consoleNode{}, Classes: []consoleClass{}, Connections: []consoleConnOut{},
		Alerts: []consoleAlert{}}
	if only == "" {
		v.Nodes = s.consoleNodes()
	}
	byID := map[sfu.RoomID]*consoleClass{}
	if l := s.link(); l != nil {
		v.Node = string(l.self)
		for _, e := range l.node.Directory.Entries() {
			if only == "" || e.Room == only {
				byID[e.Room] = &consoleClass{Room: string(e.Room), Origin: string(e.Origin)}
			}
		}
	}
	for _, r := range s.hub.snapshot() {
		if only != "" && r.id != only {
			continue
		}
		c := byID[r.id]
		if c == nil {
			c = &consoleClass{Room: string(r.id)}
			byID[r.id] = c
		}
		conns := r.consoleLocked(c, s.rec.state(r.id).Active)
		for i := range conns {
			conns[i].figures(now)
			if conns[i].out.Role == string(auth.RoleStudent) && conns[i].out.Verdict == verdictBad {
				c.BadStudents++
			}
			v.Connections = append(v.Connections, conns[i].out)
		}
	}
	for _, c := range byID {
		v.Classes = append(v.Classes, *c)
	}
	v.Alerts = s.consoleAlerts(v, only, now)
	sort.Slice(v.Classes, func(i, j int) bool { return v.Classes[i].Room < v.Classes[j].Room })
	sort.Slice(v.Connections, func(i, j int) bool {
		a, b := v.Connections[i], v.Connections[j]
		return a.Room < b.Room || a.Room == b.Room && a.Participant < b.Participant
	})
	return v
}

// consoleAlerts lists what needs an operator: classes in bad quality
// (as lectern_classes_bad_quality counts them), nodes near capacity, this
// node's NATS connection lost, and its recordings' troubles.
func (s *Server) consoleAlerts(v consoleView, only sfu.RoomID, now time.Time) []consoleAlert {
	out := []consoleAlert{}
	judged := map[string]int{}
	for _, c := range v.Connections {
		if c.Role == string(auth.RoleStudent) && c.Verdict != "" {
			judged[c.Room]++
		}
	}
	for _, c := range v.Classes {
		if c.BadStudents > 0 && float64(c.BadStudents) >= badClassShare*float64(judged[c.Room]) {
			out = append(out, consoleAlert{Kind: "class_bad_quality", Node: v.Node, Room: c.Room,
				Text: fmt.Sprintf("%d of %d students in bad quality", c.BadStudents, judged[c.Room])})
		}
	}
	for _, n := range v.Nodes {
		if n.NATS == "disconnected" {
			out = append(out, consoleAlert{Kind: "nats_disconnected", Node: n.ID, Text: "NATS disconnected"})
		}
		if n.Capacity > 0 && float64(n.Students) >= nearCapacity*float64(n.Capacity) {
			out = append(out, consoleAlert{Kind: "node_near_capacity", Node: n.ID,
				Text: fmt.Sprintf("%d of %d students", n.Students, n.Capacity)})
		}
	}
	return append(out, s.recordingAlerts(v.Node, only, now)...)
}

// recordingAlerts: a recording of this node that failed lately, and, to
// an operator of every class, its recordings' disk nearly full (under
// diskNearlyFull free, as lectern_recordings_disk_free_bytes shows it).
func (s *Server) recordingAlerts(node string, only sfu.RoomID, now time.Time) []consoleAlert {
	var out []consoleAlert
	if f, ok := s.rec.lastFailure(); ok && now.Sub(f.at) < recentRecFailures && (only == "" || f.room == only) {
		out = append(out, consoleAlert{Kind: "recording_failed", Node: node, Room: string(f.room),
			Text: "recording stopped by itself: " + f.reason})
	}
	if free, size, ok := s.rec.disk(); ok && only == "" && size > 0 && float64(free) < diskNearlyFull*float64(size) {
		out = append(out, consoleAlert{Kind: "recording_disk_nearly_full", Node: node,
			Text: fmt.Sprintf("%.1f %% of the recordings' disk free (%d of %d MB)",
				100*float64(free)/float64(size), free>>20, size>>20)})
	}
	return out
}

// consoleNodes: this node, from its own counts, then the others as the
// registry last heard of them.
func (s *Server) consoleNodes() []consoleNode {
	st := s.hub.stats()
	_, out := s.rates.get()
	self := consoleNode{Self: true, Liveness: "alive", NATS: "connected", Students: st.roles[string(auth.RoleStudent)],
		Classes: st.classes, BitrateOut: int64(out), Draining: s.draining.Load(), Capacity: s.opts.MaxStudents}
	if s.opts.Ready != nil && s.opts.Ready() != nil {
		self.NATS = "disconnected"
	}
	nodes := []consoleNode{}
	if l := s.link(); l != nil {
		reg := l.node.Registry
		for _, n := range reg.Nodes() {
			if n.Self {
				self.ID, self.URL, self.Version = string(n.ID), n.URL, n.Version
				continue
			}
			nodes = append(nodes, consoleNode{ID: string(n.ID), URL: n.URL, Version: n.Version,
				Liveness: reg.Liveness(n.ID, n.Boot).String(), Students: n.Load.Students, Classes: n.Load.Classes,
				BitrateOut: n.Load.BitrateOut, Draining: n.Load.Draining, Capacity: n.Capacity})
		}
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	return append([]consoleNode{self}, nodes...)
}

// consoleConn is a participant's row and the down tracks its figures
// come from, read after room.mu is released (no sfu call under a lock).
type consoleConn struct {
	out   consoleConnOut
	downs []*sfu.DownTrack
	subs  []*sfu.Subscriber
	view  *sfu.Viewer
}

// consoleLocked fills c from the room and lists its local participants.
func (r *room) consoleLocked(c *consoleClass, recording bool) []consoleConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.Live, c.Recording = r.live, recording
	var out []consoleConn
	for _, m := range r.members {
		if !m.listed() {
			continue
		}
		c.Local++
		if c.Title == "" {
			c.Title = m.conn.claims.Title
		}
		cc := consoleConn{out: consoleConnOut{Room: string(r.id), Participant: m.info.ID, Name: m.info.Name,
			Role: m.info.Role, Transport: r.transportLocked(m.conn), Path: m.path, Browser: m.conn.browser.Load()}}
		for _, sub := range m.conn.subs {
			if sub.sub != nil {
				cc.subs = append(cc.subs, sub.sub)
			}
		}
		if x := r.headless[m.conn]; x != nil {
			cc.view = x.viewer
		}
		out = append(out, cc)
	}
	c.Participants = c.Local + len(r.remote)
	return out
}

// figures reads the participant's down tracks: the worst figure of each
// kind among fresh reports, and the bytes sent.
func (cc *consoleConn) figures(now time.Time) {
	for _, sub := range cc.subs {
		cc.downs = append(cc.downs, sub.DownTracks()...)
	}
	if cc.view != nil {
		cc.downs = append(cc.downs, cc.view.DownTracks()...)
	}
	o := &cc.out
	o.Tracks = len(cc.downs)
	o.Verdict = studentVerdict(cc.downs, now)
	for _, d := range cc.downs {
		o.BytesSent += d.BytesSent()
		r, ok := d.Reception()
		if !ok || now.Sub(r.At) > receptionFresh {
			continue
		}
		o.Loss = max(o.Loss, r.FractionLost)
		o.RTTMs = max(o.RTTMs, float64(r.RTT)/float64(time.Millisecond))
		o.JitterMs = max(o.JitterMs, float64(r.Jitter)/float64(time.Millisecond))
	}
}
