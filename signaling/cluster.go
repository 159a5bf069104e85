package signaling

// The cluster glue: with Options.Cluster set, the classes of this node are
// parts of classes spread over several nodes (docs/scaling.md). This file
// mirrors classroom events over the cluster's Bus, so that chat, hands,
// participant lists and moderation cover the whole class; cluster_relay.go
// pulls each stream of the class from the node where it is published;
// cluster_route.go decides which node serves a participant. Without a
// cluster none of it runs: s.cl is nil and every hook returns at once.
//
// Lock order: the Bus handler takes hub.mu and room.mu like any other
// caller; Bus.Publish (a buffered NATS publish that never waits for a
// subscriber) is called with room.mu held so that events leave in the
// order the room made them. clusterLink.mu is a leaf.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"lectern/auth"
	"lectern/cluster"
	"lectern/sfu"
)

// Cluster event types: the protocol's own payloads, wrapped.
const (
	evHello    = "hello"    // a node now carries the class: tell it your state
	evJoined   = "joined"   // Participant joined (or changed node)
	evUpdated  = "updated"  // Participant changed (hand, permission)
	evLeft     = "left"     // Participant.ID left
	evChat     = "chat"     // Chat was posted
	evModerate = "moderate" // Action on Target, for the node that has it
	evStream   = "stream"   // a stream published here is ready (Ready) or ended
	evRoster   = "roster"   // Roster: every participant of the class on the sending node
	evEnded    = "ended"    // the class ended for everyone (endclass.go); By ended it
)

// remoteSweep is how often participants of dead nodes are looked for.
const remoteSweep = time.Second

// outageClaimGoneAfters bounds the attempts to claim, after a NATS
// outage, a class whose teacher is here, in the registry's GoneAfters:
// past one, so that a dead origin is known as such.
const outageClaimGoneAfters = 4

// clusterEvent is one classroom event between the nodes of a class.
type clusterEvent struct {
	Type        string           `json:"type"`
	Participant *participantInfo `json:"participant,omitempty"`
	Chat        *chatMsg         `json:"chat,omitempty"`
	Action      string           `json:"action,omitempty"`
	Target      string           `json:"target,omitempty"`
	Stream      *streamInfo      `json:"stream,omitempty"`
	Ready       bool             `json:"ready,omitempty"`
	Roster      []string         `json:"roster,omitempty"`
	// Role is the role of Stream's owner, teacher or student. Empty reads
	// as teacher: earlier versions announce teacher streams only.
	Role string `json:"role,omitempty"`
	// By is who ended the class (evEnded).
	By string `json:"by,omitempty"`
}

// remoteMember is a participant of the class on another node.
type remoteMember struct {
	info participantInfo
	node cluster.NodeID
	seq  uint64
}

// clusterLink is this server's part of the cluster.
type clusterLink struct {
	s    *Server
	node *cluster.Node
	self cluster.NodeID
	max  int // students this node takes (0: no limit)
	log  zerolog.Logger
	stop chan struct{}
	once sync.Once
	// origins are the nodes' web origins, for pages that move between
	// nodes (cluster_origin.go).
	origins nodeOrigins
}

func newClusterLink(s *Server, n *cluster.Node, maxStudents int) *clusterLink {
	l := &clusterLink{
		s: s, node: n, self: n.Registry.Self().ID, max: maxStudents,
		log: s.log.With().Str("component", "cluster").Logger(), stop: make(chan struct{}),
	}
	return l
}

// JoinCluster makes this server a node of a cluster (docs/scaling.md):
// from then on classes opened here share their events with the other
// nodes, streams are relayed between nodes and joins may be sent
// to other nodes. A node joins once; classes already open stay local.
func (s *Server) JoinCluster(n *cluster.Node) error {
	l := newClusterLink(s, n, s.opts.MaxStudents)
	if !s.cl.CompareAndSwap(nil, l) {
		return fmt.Errorf("signaling: already in a cluster")
	}
	if err := l.start(); err != nil {
		return fmt.Errorf("signaling: cluster: %w", err)
	}
	return nil
}

// link is the cluster glue, nil while the node is on its own.
func (s *Server) link() *clusterLink { return s.cl.Load() }

// start answers relay requests, sweeps out participants of dead nodes
// and resynchronises the classes after every NATS outage.
func (l *clusterLink) start() error {
	if err := l.node.Bus.HandleRelay(l.serveRelay); err != nil {
		return err
	}
	if err := l.node.Bus.OnReconnect(l.resync); err != nil {
		return err
	}
	l.s.tasks.start(l.sweepLoop)
	return nil
}

// resync runs when NATS is back after an outage. Events published
// meanwhile may have reached no other node, so every class tells the
// other nodes its state here (participants, then the roster that drops
// those who left meanwhile, and every stream published here: the
// teacher's and those of invited students) and asks them for theirs:
// both sides of the class converge whichever node reconnected first, and
// a node that missed a stream announcement pulls the stream then. A class
// with a teacher here is claimed: a teacher who joined during the outage
// was served without a claim (route).
func (l *clusterLink) resync() {
	for _, r := range l.s.hub.snapshot() {
		r.sendState()
		r.mu.Lock()
		r.mirrorLocked(clusterEvent{Type: evHello})
		r.mu.Unlock()
		if r.teaches() {
			id := r.id
			l.s.tasks.start(func() { l.claimAfterOutage(id) })
		}
	}
}

// claimAfterOutage claims a class whose teacher is here. It finds the
// entry this node holds already when the teacher was here before the
// outage, and takes the class over when its origin died meanwhile. Right
// after a reconnection JetStream may not answer yet, and the registry
// cannot judge other nodes for GoneAfter: until the answer is final it
// tries again, as long as the teacher is here: a class that ended
// meanwhile was released (closed), and claiming it then would keep its
// entry, refreshed by this node, until the node stops. Another live
// origin is final: a teacher joined here while the class lived
// elsewhere, and each node serves its own teacher, which the log says.
func (l *clusterLink) claimAfterOutage(id sfu.RoomID) {
	deadline := time.Now().Add(outageClaimGoneAfters * l.node.Directory.GoneAfter())
	for l.teachesHere(id) {
		ctx, cancel := context.WithTimeout(context.Background(), routeTimeout)
		e, err := l.node.Directory.Claim(ctx, id)
		cancel()
		if err == nil && l.s.hub.lookup(id) == nil {
			l.releaseEnded(id) // the class ended while it was claimed
			return
		}
		final := err == nil || (errors.Is(err, cluster.ErrTaken) &&
			l.node.Registry.Liveness(e.Origin, e.Boot) == cluster.Alive)
		if final || time.Now().After(deadline) {
			if err != nil {
				l.log.Warn().Err(err).Str("room", string(id)).Str("origin", string(e.Origin)).
					Msg("signaling: a teacher is here, but the class is not this node's after the NATS outage")
			}
			return
		}
		select {
		case <-l.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

// teachesHere reports whether class id is open here with its teacher.
func (l *clusterLink) teachesHere(id sfu.RoomID) bool {
	r := l.s.hub.lookup(id)
	return r != nil && r.teaches()
}

// teaches reports whether a teacher of the class is connected here.
func (r *room) teaches() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.members {
		if m.info.Role == string(auth.RoleTeacher) {
			return true
		}
	}
	return false
}

func (l *clusterLink) shutdown() { l.once.Do(func() { close(l.stop) }) }

// opened subscribes a new local class to its events and asks the other
// nodes carrying it for their state. Called with hub.mu held.
func (l *clusterLink) opened(r *room) {
	id := r.id
	sub, err := l.node.Bus.Subscribe(id, func(from cluster.NodeID, data []byte) { l.onEvent(id, from, data) })
	if err != nil {
		r.log.Warn().Err(err).Msg("signaling: class events of other nodes unavailable")
		return
	}
	r.csub = sub
	l.publish(id, clusterEvent{Type: evHello})
}

// closed ends a class that left this node: its relays end, its
// subscription closes and, on its origin, the directory entry goes.
func (l *clusterLink) closed(r *room) {
	r.mu.Lock()
	var toClose []io.Closer
	for _, st := range r.streams {
		if st.relay {
			toClose = append(toClose, r.endStreamLocked(st)...)
		}
	}
	r.remote = map[sfu.ParticipantID]*remoteMember{}
	r.peers = map[cluster.NodeID]bool{}
	sub := r.csub
	r.csub = nil
	r.mu.Unlock()
	closeAll(toClose)
	if sub != nil {
		_ = sub.Close()
	}
	l.s.tasks.start(func() { l.releaseEnded(r.id) })
}

// releaseEnded removes the directory entry of a class that ended here,
// when this node is its origin.
func (l *clusterLink) releaseEnded(id sfu.RoomID) {
	if l.s.hub.lookup(id) != nil {
		return // the class came back meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.node.Directory.Release(ctx, id) // ErrNotOwner: another node's class
}

func (l *clusterLink) publish(id sfu.RoomID, ev clusterEvent) {
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	if err := l.node.Bus.Publish(id, b); err != nil {
		l.log.Debug().Err(err).Str("room", string(id)).Msg("signaling: class event not sent")
	}
}

// mirrorLocked sends one event of r to the other nodes of the class.
func (r *room) mirrorLocked(ev clusterEvent) {
	if l := r.s.link(); l != nil && r.csub != nil {
		l.publish(r.id, ev)
	}
}

// mirrorStreamLocked tells the other nodes that a stream published here
// (the teacher's, or an invited student's) is ready or ended: they pull
// it from here. A relayed stream is announced by the node it comes from.
func (r *room) mirrorStreamLocked(st *stream, ready bool) {
	if st.relay {
		return
	}
	info := st.info(string(st.serverID))
	role := auth.RoleStudent
	if st.teacher {
		role = auth.RoleTeacher
	}
	r.mirrorLocked(clusterEvent{Type: evStream, Stream: &info, Ready: ready, Role: string(role)})
}

// onEvent applies an event from another node to the local class.
func (l *clusterLink) onEvent(id sfu.RoomID, from cluster.NodeID, data []byte) {
	var ev clusterEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		l.log.Debug().Err(err).Msg("signaling: malformed class event")
		return
	}
	r := l.s.hub.lookup(id)
	if r == nil {
		return
	}
	if ev.Type == evEnded {
		l.remoteEnded(id, ev.By)
		return
	}
	if r.firstContact(from, ev.Type) {
		r.sendState()
		r.mu.Lock()
		r.mirrorLocked(clusterEvent{Type: evHello})
		r.mu.Unlock()
	}
	switch ev.Type {
	case evHello:
		r.sendState()
	case evJoined, evUpdated:
		if ev.Participant != nil {
			r.remoteJoined(from, *ev.Participant)
		}
	case evLeft:
		if ev.Participant != nil {
			r.remoteLeft(from, sfu.ParticipantID(ev.Participant.ID))
		}
	case evChat:
		if ev.Chat != nil {
			r.remoteChat(*ev.Chat)
		}
	case evModerate:
		r.remoteModerate(ev.Action, sfu.ParticipantID(ev.Target))
	case evStream:
		if ev.Stream != nil {
			teacher := ev.Role == "" || ev.Role == string(auth.RoleTeacher)
			l.streamEvent(r, from, remoteStream{info: *ev.Stream, teacher: teacher}, ev.Ready)
		}
	case evRoster:
		r.remoteRoster(from, ev.Roster)
	}
}

// sendState answers a hello: the local participants, their roster and
// the streams published here.
func (r *room) sendState() {
	r.mu.Lock()
	defer r.mu.Unlock()
	roster := []string{}
	for _, m := range r.members {
		if m.listed() {
			r.mirrorLocked(clusterEvent{Type: evJoined, Participant: &m.info})
			roster = append(roster, m.info.ID)
		}
	}
	r.mirrorLocked(clusterEvent{Type: evRoster, Roster: roster})
	for _, st := range r.readyStreamsLocked() {
		r.mirrorStreamLocked(st, true)
	}
}

func (r *room) remoteJoined(from cluster.NodeID, info participantInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.members[sfu.ParticipantID(info.ID)]; m != nil && !m.conn.headless() {
		return // connected here: this node's word is the one that counts
	}
	if r.s.hub.bans.banned(r.id, sfu.ParticipantID(info.ID)) {
		// A removed participant joined a node that did not know: one that
		// opened the class after the removal, or missed the event. Tell
		// it again; it removes the participant (close 4003) and keeps the
		// ban from then on. The participant is never listed here.
		r.mirrorLocked(clusterEvent{Type: evModerate, Action: typeRemove, Target: info.ID})
		return
	}
	rm := r.remote[sfu.ParticipantID(info.ID)]
	typ := typeParticipantUpdated
	if rm == nil {
		r.seq++
		rm = &remoteMember{seq: r.seq}
		r.remote[sfu.ParticipantID(info.ID)] = rm
		typ = typeParticipantJoined
	}
	if rm.info == info && rm.node == from {
		return
	}
	rm.info, rm.node = info, from
	r.broadcastLocked(encode(typ, "", info), nil)
}

func (r *room) remoteLeft(from cluster.NodeID, id sfu.ParticipantID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rm := r.remote[id]; rm != nil && rm.node == from {
		r.dropRemoteLocked(id)
	}
}

// remoteRoster drops the participants of node from that its roster no
// longer lists: they left while their departure could not reach here.
func (r *room) remoteRoster(from cluster.NodeID, ids []string) {
	keep := make(map[sfu.ParticipantID]bool, len(ids))
	for _, id := range ids {
		keep[sfu.ParticipantID(id)] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, rm := range r.remote {
		if rm.node == from && !keep[id] {
			r.dropRemoteLocked(id)
		}
	}
}

// dropRemoteLocked forgets a participant of another node, and tells the
// local members unless the participant is connected here now.
func (r *room) dropRemoteLocked(id sfu.ParticipantID) {
	delete(r.remote, id)
	if r.members[id] == nil {
		r.broadcastLocked(encode(typeParticipantLeft, "", participantRefOut{ID: string(id)}), nil)
	}
}

func (r *room) remoteChat(msg chatMsg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addChatLocked(msg)
}

// moderateRemoteLocked sends a teacher's action on a student of another
// node to that node; not_found when nobody in the class has the id.
func (r *room) moderateRemoteLocked(typ string, target sfu.ParticipantID) error {
	rm := r.remote[target]
	if rm == nil || r.csub == nil {
		return errNoParticipant(target)
	}
	if rm.info.Role != string(auth.RoleStudent) {
		return errOnlyStudents
	}
	if typ == typeRemove {
		r.s.hub.bans.add(r.id, target)
	}
	r.mirrorLocked(clusterEvent{Type: evModerate, Action: typ, Target: string(target)})
	return nil
}

// remoteModerate runs an action decided on another node; a removal bans
// the participant here too, so that it cannot come back through this node.
func (r *room) remoteModerate(typ string, target sfu.ParticipantID) {
	switch typ {
	case typeLowerHand, typeInvite, typeRevoke, typeRemove:
	default:
		return
	}
	if typ == typeRemove {
		r.s.hub.bans.add(r.id, target)
	}
	r.mu.Lock()
	m := r.members[target]
	if m == nil || m.info.Role != string(auth.RoleStudent) {
		r.mu.Unlock()
		return
	}
	toClose := r.applyModerationLocked(m, typ)
	r.mu.Unlock()
	closeAll(toClose)
}

// sweepLoop drops participants of nodes judged dead, so that lists and
// counts do not keep them.
func (l *clusterLink) sweepLoop() {
	t := time.NewTicker(remoteSweep)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.origins.remember(l.node.Registry.Nodes())
			for _, r := range l.s.hub.snapshot() {
				r.dropDeadRemotes(l.node.Registry)
			}
		}
	}
}

func (r *room) dropDeadRemotes(reg *cluster.Registry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, rm := range r.remote {
		if reg.Liveness(rm.node, "") == cluster.Dead {
			r.dropRemoteLocked(id)
		}
	}
	for n := range r.peers {
		if reg.Liveness(n, "") == cluster.Dead {
			delete(r.peers, n) // a restart under the same ID is a new peer
		}
	}
}

// firstContact records that the class heard from node from and reports
// whether it is the first time through an event other than a hello. A
// new subscription's interest reaches the other servers of a NATS
// cluster a little later, so the first events of a class opened on two
// nodes at once (a hello and its answer, the first joins) can be lost
// between them. The first event that does arrive shows both are
// subscribed: each side then sends its state and asks for the other's.
// A hello is answered with the state anyway.
func (r *room) firstContact(from cluster.NodeID, typ string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peers[from] {
		return false
	}
	r.peers[from] = true
	return typ != evHello
}

// snapshot lists the open classes.
func (h *hub) snapshot() []*room {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		out = append(out, r)
	}
	return out
}

// nodeURLs are the live nodes' base URLs, this node's first, for clients
// to fall back on when their node goes away.
func (l *clusterLink) nodeURLs() []string {
	out := []string{}
	self := ""
	for _, n := range l.node.Registry.Nodes() {
		if n.URL == "" || l.node.Registry.Liveness(n.ID, n.Boot) != cluster.Alive {
			continue
		}
		if n.Self {
			self = n.URL
			continue
		}
		out = append(out, n.URL)
	}
	if self != "" {
		out = append([]string{self}, out...)
	}
	return out
}
