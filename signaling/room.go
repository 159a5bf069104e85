package signaling

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"lectern/auth"
	"lectern/cluster"
	"lectern/sfu"
)

const chatHistory = 50

// maxChatters bounds the chat rate table of one class.
const maxChatters = 10_000

// room is one class on this node.
type room struct {
	id  sfu.RoomID
	s   *Server
	log zerolog.Logger

	mu      sync.Mutex // guards everything below and each member conn's pubs, subs, left
	members map[sfu.ParticipantID]*member
	streams map[sfu.StreamID]*stream // published, ready or not
	chat    []chatMsg
	// chatBy is each participant's chat rate, chatAll the class's.
	chatBy  *limiter
	chatAll bucket
	live    bool
	seq     uint64
	// headless are the participants of WHIP and WHEP sessions (session.go):
	// connections without a websocket. One is a member only while no other
	// connection of its participant is.
	headless map[*conn]*session
	// remote are the class's participants on other nodes (cluster.go),
	// listed with the local ones; csub is the class's event subscription.
	remote map[sfu.ParticipantID]*remoteMember
	csub   io.Closer
	// peers are the nodes this class has heard from (cluster.go).
	peers map[cluster.NodeID]bool
	// quality is the verdicts last sent to the moderators; qualityStale
	// makes the next tick send them again (quality_notify.go).
	quality      map[string]string
	qualityStale bool
}

// member is a participant; it outlives a connection replaced by a newer one.
type member struct {
	info participantInfo
	conn *conn
	seq  uint64 // join order, for listings
	path string // how its newest peer connection connected (paths.go)
}

func newRoom(s *Server, id sfu.RoomID) *room {
	return &room{
		id: id, s: s,
		log:      s.log.With().Str("room", string(id)).Logger(),
		members:  map[sfu.ParticipantID]*member{},
		streams:  map[sfu.StreamID]*stream{},
		headless: map[*conn]*session{},
		remote:   map[sfu.ParticipantID]*remoteMember{},
		peers:    map[cluster.NodeID]bool{},
		chatBy:   newLimiter(s.opts.Limits.ChatRate, s.opts.Limits.ChatBurst, maxChatters),
	}
}

func (m *member) listed() bool { return m.info.Role != string(auth.RoleOperator) }

// join adds c, replacing an older connection of the same participant, and
// queues the welcome. It returns the replaced connection's peers to close.
func (r *room) join(c *conn) []io.Closer {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.room = r
	var toClose []io.Closer
	m := r.members[c.pid]
	replaced := m != nil
	if replaced && !m.conn.headless() {
		old := m.conn
		toClose = r.detachLocked(old)
		old.close(ErrReplaced, false)
		old.log.Info().Msg("signaling: replaced by a new connection")
	} else if !replaced {
		delete(r.remote, c.pid) // it moved here from another node
		r.seq++
		m = &member{seq: r.seq, info: participantInfo{ID: string(c.pid), Role: string(c.claims.Role)}}
		r.members[c.pid] = m
	}
	m.conn = c
	m.info.Name = c.claims.Name
	r.s.audit.joined(r.id, c, transportWS, replaced)
	r.moderatorJoinedLocked(c.claims.Role)
	w := r.welcomeLocked(m)
	w.ICEServers = iceInfos(r.s.iceServers(c.pid, c.claims, c.host))
	w.Connections = r.connectionsLocked(m)
	c.sendMsg(typeWelcome, "", w)
	if m.listed() {
		typ := typeParticipantJoined
		if replaced {
			typ = typeParticipantUpdated
		}
		r.broadcastLocked(encode(typ, "", m.info), c)
		r.mirrorLocked(clusterEvent{Type: evJoined, Participant: &m.info})
	}
	return toClose
}

func (r *room) welcomeLocked(me *member) welcomeData {
	w := welcomeData{
		Room: string(r.id), You: me.info, Live: r.live,
		Participants: []participantInfo{}, Streams: []streamInfo{},
		Chat:      append([]chatMsg{}, r.chat...),
		Recording: r.s.rec.state(r.id),
	}
	ms := make([]*member, 0, len(r.members))
	for _, m := range r.members {
		if m.listed() {
			ms = append(ms, m)
		}
	}
	for _, rm := range r.remote {
		ms = append(ms, &member{seq: rm.seq, info: rm.info})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
	for _, m := range ms {
		w.Participants = append(w.Participants, m.info)
	}
	if l := r.s.link(); l != nil {
		w.Node, w.Nodes = string(l.self), l.nodeURLs()
	}
	for _, st := range r.readyStreamsLocked() {
		w.Streams = append(w.Streams, st.info(string(st.serverID)))
	}
	return w
}

// leave takes a connection out of the class: its streams end, and unless
// a newer connection replaced it, the participant leaves.
func (r *room) leave(c *conn) {
	r.mu.Lock()
	if c.left {
		r.mu.Unlock()
		return
	}
	toClose := r.detachLocked(c)
	r.s.audit.left(r.id, c, r.transportLocked(c))
	delete(r.headless, c)
	if m := r.members[c.pid]; m != nil && m.conn == c && !r.handOverLocked(m) {
		r.removeMemberLocked(m)
	}
	empty := len(r.members) == 0
	r.mu.Unlock()
	closeAll(toClose)
	c.log.Info().Msg("signaling: left")
	if empty {
		r.s.hub.dropIfEmpty(r)
		r.s.rec.classEnded(r.id)
	}
}

func (r *room) removeMemberLocked(m *member) {
	delete(r.members, sfu.ParticipantID(m.info.ID))
	if m.listed() {
		r.broadcastLocked(encode(typeParticipantLeft, "", participantRefOut{ID: m.info.ID}), nil)
		r.mirrorLocked(clusterEvent{Type: evLeft, Participant: &participantInfo{ID: m.info.ID}})
	}
}

type participantRefOut struct {
	ID string `json:"id"`
}

// detachLocked ends c's streams and subscriptions; it returns their peers.
func (r *room) detachLocked(c *conn) []io.Closer {
	c.left = true
	var toClose []io.Closer
	for _, st := range c.pubs {
		toClose = append(toClose, r.endStreamLocked(st)...)
	}
	for id, sub := range c.subs {
		delete(c.subs, id)
		delete(sub.stream.subs, c)
		toClose = append(toClose, sub.sub)
	}
	return toClose
}

// shutdown tells every member and ends every stream; it returns the peers.
func (r *room) shutdown() []io.Closer {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := encode(typeShutdown, "", reasonData{Reason: "the server is restarting"})
	for _, m := range r.members {
		m.conn.enqueue(msg)
	}
	return r.closeEveryoneLocked(ErrShuttingDown)
}

// closeEveryoneLocked ends the streams and subscriptions of every
// connection of the class, websockets and WHIP and WHEP sessions, closes
// them with err (a websocket after what is queued for it) and empties
// the class; it returns the peers to close.
func (r *room) closeEveryoneLocked(err error) []io.Closer {
	var toClose []io.Closer
	for _, m := range r.members {
		toClose = append(toClose, r.detachLocked(m.conn)...)
		m.conn.close(err, true)
	}
	r.members = map[sfu.ParticipantID]*member{}
	for hc := range r.headless {
		toClose = append(toClose, r.detachLocked(hc)...)
		hc.close(err, false)
	}
	r.headless = map[*conn]*session{}
	return toClose
}

// broadcastLocked queues msg to every member but except.
func (r *room) broadcastLocked(msg []byte, except *conn) {
	for _, m := range r.members {
		if m.conn != except {
			m.conn.enqueue(msg)
		}
	}
}

func (r *room) postChat(c *conn, text string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[c.pid]
	if m == nil || m.conn != c {
		return fmt.Errorf("%w: not in the class", ErrForbidden)
	}
	now := time.Now()
	if err := r.chatAllowedLocked(m, now); err != nil {
		return err
	}
	msg := chatMsg{ID: m.info.ID, Name: m.info.Name, Text: text, TS: now.UnixMilli()}
	r.addChatLocked(msg)
	r.mirrorLocked(clusterEvent{Type: evChat, Chat: &msg})
	return nil
}

// chatAllowedLocked spends a chat token of the participant, then, for a
// student, of the class (bursts of twice its rate): however many student
// tokens post, everyone receives at most the class's rate, and students
// who spend it never silence the teacher.
func (r *room) chatAllowedLocked(m *member, now time.Time) error {
	lim := r.s.opts.Limits
	if ok, wait := r.chatBy.allow(m.info.ID, now); !ok {
		return retryAfter(ErrChatRate, wait)
	}
	if m.info.Role != string(auth.RoleStudent) {
		return nil
	}
	if ok, wait := r.chatAll.take(now, lim.ClassChatRate, max(2, int(2*lim.ClassChatRate))); !ok {
		return retryAfter(ErrChatRate, wait)
	}
	return nil
}

// addChatLocked keeps msg in the history and sends it to every member;
// chat is dropped for a member whose queue is half full (enqueueDroppable).
func (r *room) addChatLocked(msg chatMsg) {
	r.chat = append(r.chat, msg)
	if len(r.chat) > chatHistory {
		r.chat = append(r.chat[:0:0], r.chat[len(r.chat)-chatHistory:]...)
	}
	b := encode(typeChat, "", msg)
	for _, m := range r.members {
		m.conn.enqueueDroppable(b)
	}
}

func (r *room) setHand(c *conn, raised bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[c.pid]
	if m == nil || m.conn != c {
		return fmt.Errorf("%w: not in the class", ErrForbidden)
	}
	if m.info.Role != string(auth.RoleStudent) {
		return fmt.Errorf("%w: only students raise hands", ErrForbidden)
	}
	if m.info.Hand != raised {
		m.info.Hand = raised
		r.broadcastLocked(encode(typeParticipantUpdated, "", m.info), nil)
		r.mirrorLocked(clusterEvent{Type: evUpdated, Participant: &m.info})
	}
	return nil
}

// moderate runs a teacher's (or operator's) lower_hand, invite, revoke or
// remove on a student. A student on another node of the class is
// moderated by that node (cluster.go).
func (r *room) moderate(c *conn, typ string, target sfu.ParticipantID) error {
	if c.claims.Role != auth.RoleTeacher && c.claims.Role != auth.RoleOperator {
		return fmt.Errorf("%w: only teachers moderate", ErrForbidden)
	}
	r.mu.Lock()
	m := r.members[target]
	if m == nil || !m.listed() {
		err := r.moderateRemoteLocked(typ, target)
		r.mu.Unlock()
		if err == nil {
			// Audited where it was decided, once, whichever node applies it.
			r.s.audit.moderated(r.id, c.pid, target, typ)
		}
		return err
	}
	if m.info.Role != string(auth.RoleStudent) {
		r.mu.Unlock()
		return fmt.Errorf("%w: only students are moderated", ErrForbidden)
	}
	toClose := r.applyModerationLocked(m, typ)
	r.mu.Unlock()
	closeAll(toClose)
	c.log.Info().Str("action", typ).Str("target", string(target)).Msg("signaling: moderation")
	r.s.audit.moderated(r.id, c.pid, target, typ)
	return nil
}

// transportWS names the websocket in audit events; WHIP and WHEP
// sessions are named by their kind.
const transportWS = "ws"

// transportLocked is how c is connected: "ws", "whip" or "whep".
func (r *room) transportLocked(c *conn) string {
	if x := r.headless[c]; x != nil {
		return string(x.kind)
	}
	return transportWS
}

// applyModerationLocked changes a local student; it returns the peers to close.
func (r *room) applyModerationLocked(m *member, typ string) []io.Closer {
	var toClose []io.Closer
	changed := true
	switch typ {
	case typeLowerHand:
		changed = m.info.Hand
		m.info.Hand = false
	case typeInvite:
		changed = !m.info.CanPublish
		m.info.CanPublish = true
	case typeRevoke:
		m.info.CanPublish = false
		for _, st := range m.conn.pubs {
			toClose = append(toClose, r.endStreamLocked(st)...)
		}
	case typeRemove:
		toClose = r.removeLocked(m)
		changed = false
	}
	if changed {
		r.broadcastLocked(encode(typeParticipantUpdated, "", m.info), nil)
		r.mirrorLocked(clusterEvent{Type: evUpdated, Participant: &m.info})
	}
	return toClose
}

// removeLocked bans a participant from the class and closes it with 4003.
func (r *room) removeLocked(m *member) []io.Closer {
	r.s.hub.bans.add(r.id, sfu.ParticipantID(m.info.ID))
	c := m.conn
	c.sendMsg(typeRemoved, "", reasonData{Reason: "removed by the teacher"})
	toClose := r.detachLocked(c)
	toClose = append(toClose, r.banHeadlessLocked(c.pid)...)
	r.removeMemberLocked(m)
	c.close(ErrBanned, true)
	return toClose
}
