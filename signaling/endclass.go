package signaling

// Ending a class (DELETE /api/rooms/{room}): a teacher of the class, or an
// operator whose token covers it, ends it for everyone. Every page is
// closed with 4010 (the page says the class has ended and does not
// reconnect), WHIP and WHEP sessions end with their peer connections, and
// the class's recording stops. In a cluster the node that gets the
// request tells every other node carrying the class over the class's
// event subject (evEnded), so the request works from any node, the
// class's origin or not. A join after that opens the class anew.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"lectern/auth"
	"lectern/cluster"
	"lectern/sfu"
)

// endedState is what DELETE /api/rooms/{room} answers.
type endedState struct {
	Room string `json:"room"`
	// Participants are those this node closed; the other nodes of the
	// class close theirs when the event reaches them.
	Participants int `json:"participants"`
}

// endClassHTTP serves DELETE /api/rooms/{room}.
func (s *Server) endClassHTTP(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	claims, err := s.bearer(r)
	if err == nil {
		err = checkRoom(claims, room)
	}
	if err == nil && claims.Role != auth.RoleTeacher && claims.Role != auth.RoleOperator {
		err = fmt.Errorf("%w: only teachers and operators end a class", ErrForbidden)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	n, err := s.endClass(r.Context(), sfu.RoomID(room), actor(claims))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, endedState{Room: room, Participants: n})
}

// endClass ends class id here and tells the other nodes of the cluster;
// ErrNotFound when neither this node nor the cluster's directory knows
// the class.
func (s *Server) endClass(ctx context.Context, id sfu.RoomID, by sfu.ParticipantID) (int, error) {
	here := s.hub.lookup(id) != nil
	if l := s.link(); l != nil {
		known := here
		if !known {
			_, err := l.node.Directory.Lookup(ctx, id)
			if err != nil && !errors.Is(err, cluster.ErrNoEntry) {
				return 0, fmt.Errorf("%w: the cluster's directory: %v", ErrInternal, err)
			}
			known = err == nil
		}
		if known {
			l.publish(id, clusterEvent{Type: evEnded, By: string(by)})
		}
		here = known
	}
	if !here {
		return 0, fmt.Errorf("%w: the class is not open", ErrNotFound)
	}
	return s.endHere(id, by), nil
}

// endHere ends the class's part on this node: its recording stops first,
// so that its files end where the class did, then every connection and
// session closes. It returns how many participants it closed.
func (s *Server) endHere(id sfu.RoomID, by sfu.ParticipantID) int {
	_, _ = s.rec.stopWith(id, by, stopClassEnded) // ErrNotFound: not recording
	n := s.hub.end(id)
	if n >= 0 {
		s.audit.classEnded(id, string(by), n)
		s.log.Info().Str("room", string(id)).Str("by", string(by)).Int("participants", n).Msg("signaling: class ended")
	}
	s.rec.classEnded(id)
	return max(n, 0)
}

// end closes the class on this node; -1 when it is not open here.
func (h *hub) end(id sfu.RoomID) int {
	h.mu.Lock()
	r := h.rooms[id]
	if r == nil {
		h.mu.Unlock()
		return -1
	}
	delete(h.rooms, id)
	toClose, n := r.end()
	h.mu.Unlock()
	closeAll(toClose)
	if l := h.s.link(); l != nil {
		l.closed(r)
	}
	return n
}

// end closes every connection of the class with ErrClassEnded (4010)
// after what is queued for it, and every WHIP and WHEP session; it
// returns the peers to close and how many participants were closed.
func (r *room) end() ([]io.Closer, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.members {
		if m.listed() {
			n++
		}
	}
	return r.closeEveryoneLocked(ErrClassEnded), n
}

// remoteEnded runs an end decided on another node, off the event
// handler's goroutine: closing peer connections takes a while.
func (l *clusterLink) remoteEnded(id sfu.RoomID, by string) {
	l.s.tasks.start(func() { l.s.endHere(id, sfu.ParticipantID(by)) })
}
