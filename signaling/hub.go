package signaling

import (
	"fmt"
	"io"
	"sync"
	"time"

	"lectern/sfu"
)

// banTTL is how long a removed participant id stays banned from its class,
// even after the class empties, so that its token cannot rejoin.
const banTTL = 24 * time.Hour

// hub holds one node's classes by id. A class exists while someone is in
// it; its bans outlive it.
type hub struct {
	s      *Server
	mu     sync.Mutex // guards rooms and closed; taken before any room.mu
	rooms  map[sfu.RoomID]*room
	closed bool
	bans   banList
}

func newHub(s *Server) *hub {
	return &hub{s: s, rooms: map[sfu.RoomID]*room{}, bans: banList{m: map[sfu.RoomID]map[sfu.ParticipantID]time.Time{}}}
}

// join enters c into its class, creating the class if needed. The
// welcome is queued before join returns; offers for the class's streams
// follow from a goroutine of their own.
func (h *hub) join(c *conn, id sfu.RoomID) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrShuttingDown
	}
	if h.bans.banned(id, c.pid) {
		h.mu.Unlock()
		return ErrBanned
	}
	if wait := h.s.floods.wait(c.pid); wait > 0 {
		h.mu.Unlock()
		return fmt.Errorf("%w (%ds)", ErrCoolingDown, int(wait.Seconds())+1)
	}
	r := h.openLocked(id)
	toClose := r.join(c)
	h.mu.Unlock()
	closeAll(toClose)
	h.s.tasks.start(func() { r.offerAll(c) })
	return nil
}

// openLocked returns the class, creating it if needed; in a cluster a new
// class subscribes to the class's events from other nodes.
func (h *hub) openLocked(id sfu.RoomID) *room {
	r := h.rooms[id]
	if r == nil {
		r = newRoom(h.s, id)
		h.rooms[id] = r
		r.log.Info().Msg("signaling: class opened")
		if l := h.s.link(); l != nil {
			l.opened(r)
		}
	}
	return r
}

// dropIfEmpty forgets a class nobody is in any more; in a cluster its
// relays end and its subscription closes.
func (h *hub) dropIfEmpty(r *room) {
	h.mu.Lock()
	dropped := false
	r.mu.Lock()
	if len(r.members) == 0 && h.rooms[r.id] == r {
		delete(h.rooms, r.id)
		dropped = true
		r.log.Info().Msg("signaling: class closed")
	}
	r.mu.Unlock()
	h.mu.Unlock()
	if l := h.s.link(); dropped && l != nil {
		l.closed(r)
	}
}

// shutdown refuses further joins, tells every member and ends every stream.
func (h *hub) shutdown() {
	h.mu.Lock()
	h.closed = true
	var toClose []io.Closer
	rooms := make([]*room, 0, len(h.rooms))
	for id, r := range h.rooms {
		toClose = append(toClose, r.shutdown()...)
		delete(h.rooms, id)
		rooms = append(rooms, r)
	}
	h.mu.Unlock()
	closeAll(toClose)
	if l := h.s.link(); l != nil {
		for _, r := range rooms {
			l.closed(r)
		}
	}
}

// roomStats is what the metrics read of the hub at scrape time.
type roomStats struct {
	classes int
	roles   map[string]int
	// relaysIn are the streams pulled from other nodes (one peer
	// connection each), relaysOut the peer connections other nodes pull
	// this node's streams over (cluster_relay.go).
	relaysIn, relaysOut int
}

func (h *hub) stats() roomStats {
	st := roomStats{roles: map[string]int{"teacher": 0, "student": 0, "operator": 0}}
	h.mu.Lock()
	defer h.mu.Unlock()
	st.classes = len(h.rooms)
	for _, r := range h.rooms {
		r.mu.Lock()
		for _, m := range r.members {
			st.roles[m.info.Role]++
		}
		for _, x := range r.streams {
			if x.relay && x.pub != nil {
				st.relaysIn++
			}
			st.relaysOut += len(x.outs)
		}
		r.mu.Unlock()
	}
	return st
}

// banList remembers removed participants per class. Its mutex is a leaf:
// it is taken under hub.mu or room.mu, never the other way round.
type banList struct {
	mu sync.Mutex
	m  map[sfu.RoomID]map[sfu.ParticipantID]time.Time // expiry
}

func (b *banList) add(room sfu.RoomID, p sfu.ParticipantID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.pruneLocked(now)
	if b.m[room] == nil {
		b.m[room] = map[sfu.ParticipantID]time.Time{}
	}
	b.m[room][p] = now.Add(banTTL)
}

func (b *banList) banned(room sfu.RoomID, p sfu.ParticipantID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	exp, ok := b.m[room][p]
	return ok && time.Now().Before(exp)
}

// pruneLocked forgets expired bans; run on each add, it bounds the list
// by the bans of the last 24 hours.
func (b *banList) pruneLocked(now time.Time) {
	for room, ps := range b.m {
		for p, exp := range ps {
			if !now.Before(exp) {
				delete(ps, p)
			}
		}
		if len(ps) == 0 {
			delete(b.m, room)
		}
	}
}

// closeAll closes peers collected under a lock, after it is released.
func closeAll(cs []io.Closer) {
	for _, c := range cs {
		_ = c.Close()
	}
}
