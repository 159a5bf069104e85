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
// classes and no new students while the classes it carries go on, and
// reports how many participants are left, so that `lectern drain --wait`
// (a Kubernetes pre-stop hook, a rolling upgrade) returns once they are
// gone. In a cluster the node announces itself full (cluster.Load.Draining),
// placements choose other nodes, students are redirected to a node with
// room and teachers of new classes to the node the directory places the
// class on; /readyz answers 503 so load balancers send nobody new. A node
// on its own has nowhere to send anyone and only stops being ready.

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
