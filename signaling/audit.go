package signaling

import (
	"github.com/rs/zerolog"

	"lectern/sfu"
)

// Audit events: who entered and left a class, what a moderator did to
// whom, which recordings started and stopped, who ended a class. They are what a school asks
// about afterwards, so they are written whatever the log level.
const (
	auditJoin           = "join"
	auditLeave          = "leave"
	auditAdmit          = "admit"
	auditRemove         = "remove"
	auditRecordingStart = "recording_start"
	auditRecordingStop  = "recording_stop"
	auditClassEnd       = "class_end"
)

// Reasons a recording stopped, in recording_stop events.
const (
	stopRequested  = "requested"
	stopClassEnded = "class_ended"
	stopFailed     = "failed"
	stopShutdown   = "shutdown"
)

// AuditLog writes audit events as structured log lines:
//
//	{"audit":true,"event":"join","room":"algebra","participant":"p-…","role":"student","transport":"ws"}
//
// Its events carry no level (zerolog's NoLevel), so a node logging only
// warnings still writes them; only log_level "disabled" silences them.
type AuditLog struct {
	log zerolog.Logger
}

// NewAuditLog writes audit events to log, with "audit":true bound once.
func NewAuditLog(log zerolog.Logger) *AuditLog {
	return &AuditLog{log: log.With().Bool("audit", true).Logger()}
}

func (a *AuditLog) event(name string, room sfu.RoomID) *zerolog.Event {
	return a.log.Log().Str("event", name).Str("room", string(room))
}

// joined: a connection of a participant entered the class; again is a
// new connection of a participant already in it (a reconnect).
// transport is "ws", "whip" or "whep".
func (a *AuditLog) joined(room sfu.RoomID, c *conn, transport string, again bool) {
	a.event(auditJoin, room).Str("participant", string(c.pid)).Str("role", string(c.claims.Role)).
		Str("transport", transport).Bool("again", again).Msg("audit")
}

// left: a participant's connection left the class by itself (not
// replaced, removed or stopped with the server).
func (a *AuditLog) left(room sfu.RoomID, c *conn, transport string) {
	a.event(auditLeave, room).Str("participant", string(c.pid)).Str("role", string(c.claims.Role)).
		Str("transport", transport).Msg("audit")
}

// admitted: an invite was exchanged for a student's personal token.
func (a *AuditLog) admitted(room sfu.RoomID, participant string) {
	a.event(auditAdmit, room).Str("participant", participant).Str("role", "student").Msg("audit")
}

// moderated: by applied a moderation (remove, invite, revoke,
// lower_hand) to target. Removals are event "remove"; the others are
// event "moderate" with the action.
func (a *AuditLog) moderated(room sfu.RoomID, by, target sfu.ParticipantID, action string) {
	e := a.event("moderate", room).Str("action", action)
	if action == typeRemove {
		e = a.event(auditRemove, room)
	}
	e.Str("participant", string(target)).Str("by", string(by)).Msg("audit")
}

// recordingStarted: by started the recording id; by is "" when the node
// records every class.
func (a *AuditLog) recordingStarted(room sfu.RoomID, id, by string) {
	a.event(auditRecordingStart, room).Str("recording", id).Str("by", by).Msg("audit")
}

// recordingStopped: the recording id stopped for reason, by whom when
// someone stopped it.
func (a *AuditLog) recordingStopped(room sfu.RoomID, id, by, reason string) {
	a.event(auditRecordingStop, room).Str("recording", id).Str("by", by).Str("reason", reason).Msg("audit")
}

// classEnded: by ended the class for everyone; participants are those
// this node closed.
func (a *AuditLog) classEnded(room sfu.RoomID, by string, participants int) {
	a.event(auditClassEnd, room).Str("by", by).Int("participants", participants).Msg("audit")
}
