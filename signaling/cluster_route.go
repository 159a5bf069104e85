package signaling

// Which node serves a participant (docs/scaling.md): the origin of a
// class is the node where its teacher publishes, claimed in the cluster's
// directory when the teacher joins; a teacher who reaches another node is
// sent to the origin while it lives, and takes the class over when it is
// dead. Students are served by the node they reach, unless it is full
// (Options.MaxStudents): then they are sent to a node that carries the
// class and has room, else to the least-loaded node. The websocket is
// sent a `redirect` message and closed with 4307; WHIP and WHEP answer 307.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"lectern/auth"
	"lectern/cluster"
	"lectern/sfu"
)

// routeTimeout bounds the directory round trips of one placement.
const routeTimeout = 5 * time.Second

// Redirect reasons.
const (
	reasonOrigin   = "origin"
	reasonCapacity = "capacity"
)

// redirectError sends a participant to another node's base URL.
type redirectError struct {
	url    string
	reason string
}

func (e *redirectError) Error() string { return "served by " + e.url + " (" + e.reason + ")" }

func (e *redirectError) Unwrap() error { return ErrRedirected }

// route decides whether this node serves a participant of role joining
// class id: nil, or a *redirectError. When NATS or the directory fail,
// the node serves the participant itself: a class on one node beats no
// class.
func (s *Server) route(role auth.Role, id sfu.RoomID) error {
	l := s.link()
	if l == nil {
		return nil
	}
	if s.opts.Ready != nil && s.opts.Ready() != nil {
		return nil // NATS is away: no directory to ask
	}
	if s.draining.Load() && (role == auth.RoleTeacher || role == auth.RoleStudent) {
		return l.routeDraining(role, id)
	}
	switch role {
	case auth.RoleTeacher:
		return l.routeTeacher(id)
	case auth.RoleStudent:
		return l.routeStudent(id)
	}
	return nil
}

func (l *clusterLink) routeTeacher(id sfu.RoomID) error {
	ctx, cancel := context.WithTimeout(context.Background(), routeTimeout)
	defer cancel()
	e, err := l.node.Directory.Claim(ctx, id)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, cluster.ErrTaken):
		l.log.Warn().Err(err).Str("room", string(id)).Msg("signaling: cannot claim the class; serving it here")
		return nil
	}
	if n, ok := l.node.Registry.Node(e.Origin); ok && n.URL != "" && !n.Self {
		return &redirectError{url: n.URL, reason: reasonOrigin}
	}
	// The origin is neither dead nor heard of (this node has just
	// (re)connected): serve here rather than send the teacher nowhere.
	l.log.Warn().Str("room", string(id)).Str("origin", string(e.Origin)).Msg("signaling: origin unknown; serving the teacher here")
	return nil
}

func (l *clusterLink) routeStudent(id sfu.RoomID) error {
	if l.max <= 0 || l.s.hub.stats().roles[string(auth.RoleStudent)] < l.max {
		return nil
	}
	if n, ok := l.pickNode(id); ok {
		return &redirectError{url: n.URL, reason: reasonCapacity}
	}
	l.log.Warn().Str("room", string(id)).Msg("signaling: node full and no other node has room; serving the student here")
	return nil
}

// pickNode chooses a node for a student of class id: one that carries the
// class (its origin, or a node with participants of it) and has room,
// else the least-loaded node with room.
func (l *clusterLink) pickNode(id sfu.RoomID) (cluster.NodeStatus, bool) {
	carriers := map[cluster.NodeID]bool{}
	// One read of the class's own entry in the bucket: Entries would copy
	// every class of the mirror per join.
	ctx, cancel := context.WithTimeout(context.Background(), routeTimeout)
	e, err := l.node.Directory.Lookup(ctx, id)
	cancel()
	if err == nil {
		carriers[e.Origin] = true
	}
	if r := l.s.hub.lookup(id); r != nil {
		r.mu.Lock()
		for _, rm := range r.remote {
			carriers[rm.node] = true
		}
		r.mu.Unlock()
	}
	var best cluster.NodeStatus
	found, bestCarries, bestLoad := false, false, 0.0
	for _, n := range l.node.Registry.Nodes() {
		if n.Self || n.Full() || n.URL == "" || l.node.Registry.Liveness(n.ID, n.Boot) != cluster.Alive {
			continue
		}
		load := float64(n.Load.Students)
		if n.Capacity > 0 {
			load /= float64(n.Capacity)
		}
		carries := carriers[n.ID]
		if !found || (carries && !bestCarries) || (carries == bestCarries && load < bestLoad) {
			best, found, bestCarries, bestLoad = n, true, carries, load
		}
	}
	return best, found
}

// redirectWS sends the websocket client to another node and closes.
func (c *conn) redirectWS(e *redirectError) {
	c.sendMsg(typeRedirect, "", redirectData{URL: e.url, Reason: e.reason})
	c.close(ErrRedirected, true)
	c.log.Info().Str("to", e.url).Str("reason", e.reason).Msg("signaling: redirected")
}

// writeRedirect answers a WHIP or WHEP POST with 307 to the same path on
// another node (RFC 9110 15.4.8: the client repeats the POST there).
func writeRedirect(w http.ResponseWriter, r *http.Request, err error) bool {
	var re *redirectError
	if !errors.As(err, &re) {
		return false
	}
	w.Header().Set("Location", strings.TrimSuffix(re.url, "/")+r.URL.RequestURI())
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusTemporaryRedirect)
	return true
}

// ClusterLoad is this node's load, for its announcements.
func (s *Server) ClusterLoad() cluster.Load {
	st := s.hub.stats()
	ld := cluster.Load{Students: st.roles[string(auth.RoleStudent)]}
	if l := s.link(); l != nil {
		for _, e := range l.node.Directory.Entries() {
			if e.Origin == l.self {
				ld.Classes++
			}
		}
	} else {
		ld.Classes = st.classes
	}
	if s.opts.Engine != nil {
		ld.Tracks = int(s.opts.Engine.Stats().Tracks)
	}
	ld.Draining = s.draining.Load()
	return ld
}

// --- operator API ---

type nodeOut struct {
	cluster.NodeStatus
	Liveness string `json:"liveness"`
}

type roomOut struct {
	Room         string    `json:"room"`
	Origin       string    `json:"origin,omitempty"`
	Since        time.Time `json:"since,omitzero"`
	Participants int       `json:"participants"` // the whole class, as this node knows it
	Local        int       `json:"local"`        // on this node
}

// operator checks an operator's bearer token and returns its claims.
func (s *Server) operator(r *http.Request) (auth.Claims, error) {
	claims, err := s.bearer(r)
	if err != nil {
		return claims, err
	}
	if claims.Role != auth.RoleOperator {
		return claims, fmt.Errorf("%w: operators only", ErrForbidden)
	}
	return claims, nil
}

// listNodes: GET /api/nodes, the live nodes with their load.
func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	if _, err := s.operator(r); err != nil {
		writeError(w, err)
		return
	}
	out := []nodeOut{}
	if l := s.link(); l != nil {
		reg := l.node.Registry
		for _, n := range reg.Nodes() {
			out = append(out, nodeOut{NodeStatus: n, Liveness: reg.Liveness(n.ID, n.Boot).String()})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": out})
}

// listRooms: GET /api/rooms, the classes of the whole cluster (the
// directory's mirror, which follows the bucket within seconds and keeps
// its last view while NATS is away) and the classes open here, with their
// participants. It never waits for NATS.
func (s *Server) listRooms(w http.ResponseWriter, r *http.Request) {
	claims, err := s.operator(r)
	if err != nil {
		writeError(w, err)
		return
	}
	// An operator token for one class sees that class only.
	byID := map[sfu.RoomID]*roomOut{}
	l := s.link()
	if l != nil {
		for _, e := range l.node.Directory.Entries() {
			if claims.CoversRoom(string(e.Room)) {
				byID[e.Room] = &roomOut{Room: string(e.Room), Origin: string(e.Origin), Since: e.Since}
			}
		}
	}
	for _, rm := range s.hub.snapshot() {
		if !claims.CoversRoom(string(rm.id)) {
			continue
		}
		o := byID[rm.id]
		if o == nil {
			o = &roomOut{Room: string(rm.id)}
			byID[rm.id] = o
		}
		o.Local, o.Participants = rm.counts()
	}
	out := make([]roomOut, 0, len(byID))
	for _, o := range byID {
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	writeJSON(w, http.StatusOK, map[string]any{"rooms": out})
}

// counts are the listed participants here and in the whole class.
func (r *room) counts() (local, all int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.members {
		if m.listed() {
			local++
		}
	}
	return local, local + len(r.remote)
}
