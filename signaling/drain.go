package signaling

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"lectern/auth"
	"lectern/cluster"
	"lectern/sfu"
)

// Draining a node before it stops (docs/deploy.md): it takes no new
// classes and no new students, moves its classes to other nodes, and
// reports how many participants are left, so that `lectern drain --wait`
// (a Kubernetes pre-stop hook, a rolling upgrade) returns once they are
// gone. In a cluster the node announces itself full (cluster.Load.Draining),
// placements choose other nodes, students are redirected to a node with
// room and teachers of new classes to the node the directory places the
// class on, and moveDraining hands over one class per tick; /readyz
// answers 503 so load balancers send nobody new. A node on its own has
// nowhere to send anyone and only stops being ready.

// DrainState is what GET, POST and DELETE /api/drain answer.
type DrainState struct {
	// Draining: the node takes no new classes or students.
	Draining bool `json:"draining"`
	// Participants are the teachers and students on this node.
	Participants int `json:"participants"`
	// Students are those of them who are students.
	Students int `json:"students"`
	// Classes are the classes open on this node.
	Classes int `json:"classes"`
}

// Drain starts (on) or ends draining.
func (s *Server) Drain(on bool) {
	if s.draining.Swap(on) != on {
		s.log.Info().Bool("draining", on).Msg("signaling: drain")
	}
}

// Draining reports whether the node is draining.
func (s *Server) Draining() bool { return s.draining.Load() }

func (s *Server) drainState() DrainState {
	st := s.hub.stats()
	return DrainState{
		Draining:     s.draining.Load(),
		Participants: st.roles[string(auth.RoleTeacher)] + st.roles[string(auth.RoleStudent)],
		Students:     st.roles[string(auth.RoleStudent)],
		Classes:      st.classes,
	}
}

// drainHTTP serves /api/drain: GET the state, POST to drain, DELETE to
// take classes again. Only an operator token for every class may.
func (s *Server) drainHTTP(w http.ResponseWriter, r *http.Request) {
	claims, err := s.bearer(r)
	if err == nil && (claims.Role != auth.RoleOperator || claims.Room != auth.AllRooms) {
		err = fmt.Errorf("%w: draining a node takes an operator token for every class", ErrForbidden)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	switch r.Method {
	case http.MethodPost:
		s.Drain(true)
	case http.MethodDelete:
		s.Drain(false)
	}
	writeJSON(w, http.StatusOK, s.drainState())
}

// routeDraining routes a participant while the node drains: nil to serve
// it here, or a *redirectError.
func (l *clusterLink) routeDraining(role auth.Role, id sfu.RoomID) error {
	if role == auth.RoleStudent {
		if n, ok := l.pickNode(id); ok {
			return &redirectError{url: n.URL, reason: reasonCapacity}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), routeTimeout)
	defer cancel()
	// Place keeps a live origin (this node's own classes stay here) and
	// otherwise claims the class for the least-loaded node that is not
	// full, which a draining node is not.
	e, err := l.node.Directory.Place(ctx, id)
	if errors.Is(err, cluster.ErrNoNode) {
		return nil
	}
	if err != nil {
		l.log.Warn().Err(err).Str("room", string(id)).Msg("signaling: cannot place the class while draining; serving it here")
		return nil
	}
	if n, ok := l.node.Registry.Node(e.Origin); ok && n.URL != "" && !n.Self {
		return &redirectError{url: n.URL, reason: reasonOrigin}
	}
	return nil
}

// moveDraining moves one class of a draining node to another node per
// sampling tick (every 2 s), so that the node empties without waiting for
// its classes to end: the class's entry in the directory is handed to
// the node Place picks, then its teachers and students here are sent
// there (`redirect`, close 4307), where the class page joins again and
// the teacher's page republishes. A class is moved whole, teacher and
// students in one step, so that its media comes back within a few
// seconds. WHIP and WHEP sessions cannot be redirected once set up: the
// drain waits for them to end.
func (s *Server) moveDraining() {
	l := s.link()
	if l == nil || !s.draining.Load() || s.closing.Load() {
		return
	}
	if s.opts.Ready != nil && s.opts.Ready() != nil {
		return // NATS is away: no directory to hand classes over with
	}
	for _, r := range s.hub.snapshot() {
		if l.moveClass(r) {
			return
		}
	}
}

// moveClass hands class r to another node; false when it moved nobody.
func (l *clusterLink) moveClass(r *room) bool {
	ctx, cancel := context.WithTimeout(context.Background(), routeTimeout)
	defer cancel()
	if e, err := l.node.Directory.Lookup(ctx, r.id); err == nil && e.Origin == l.self {
		if err := l.node.Directory.Release(ctx, r.id); err != nil {
			l.log.Warn().Err(err).Str("room", string(r.id)).Msg("signaling: drain: cannot release the class")
			return false
		}
	}
	e, err := l.node.Directory.Place(ctx, r.id)
	if err != nil {
		l.log.Warn().Err(err).Str("room", string(r.id)).Msg("signaling: drain: no node to move the class to")
		return false
	}
	n, ok := l.node.Registry.Node(e.Origin)
	if !ok || n.Self || n.URL == "" {
		return false
	}
	conns := r.movableConns()
	for _, c := range conns {
		c.redirectWS(&redirectError{url: n.URL, reason: reasonCapacity})
	}
	if len(conns) > 0 {
		l.log.Info().Str("room", string(r.id)).Str("to", string(n.ID)).Int("participants", len(conns)).
			Msg("signaling: drain: class moved")
	}
	return len(conns) > 0
}

// movableConns are the class's websocket participants here.
func (r *room) movableConns() []*conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*conn
	for _, m := range r.members {
		if m.listed() && !m.conn.headless() {
			out = append(out, m.conn)
		}
	}
	return out
}
