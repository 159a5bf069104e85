package signaling

import (
	"maps"
	"time"

	"lectern/auth"
)

// The teachers (and operators) of a class see each local student's
// verdict in their participant list: every sampling tick the server
// judges the students and, when a verdict changed or a moderator joined,
// sends the class's moderators on this node a `quality` message with
// every verdict it has (docs/protocol.md). Students are never sent one.
const typeQuality = "quality"

// qualityData is the quality message: participant id -> verdict.
type qualityData struct {
	Participants map[string]string `json:"participants"`
}

// notifyQuality judges every local student and tells the moderators of
// the classes whose verdicts changed. The down tracks are read with no
// lock held.
func (h *hub) notifyQuality(now time.Time) {
	for _, class := range h.studentDownTracks() {
		verdicts := make(map[string]string, len(class.pids))
		for i, downs := range class.students {
			if v := studentVerdict(downs, now); v != "" {
				verdicts[string(class.pids[i])] = v
			}
		}
		if r := h.lookup(class.id); r != nil {
			r.sendQuality(verdicts)
		}
	}
}

// sendQuality sends verdicts to the room's moderators when they differ
// from what was sent last, or a moderator joined since.
func (r *room) sendQuality(verdicts map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.qualityStale && maps.Equal(r.quality, verdicts) {
		return
	}
	r.quality, r.qualityStale = verdicts, false
	msg := encode(typeQuality, "", qualityData{Participants: verdicts})
	for _, m := range r.members {
		if role := auth.Role(m.info.Role); (role == auth.RoleTeacher || role == auth.RoleOperator) && !m.conn.headless() {
			m.conn.enqueue(msg)
		}
	}
}

// moderatorJoinedLocked makes the next tick send the verdicts again, for
// a teacher or operator who has none yet.
func (r *room) moderatorJoinedLocked(role auth.Role) {
	if role == auth.RoleTeacher || role == auth.RoleOperator {
		r.qualityStale = true
	}
}
