package signaling

// Relays between nodes (docs/scaling.md): a node with participants of a
// class pulls each stream of the class published on another node (the
// teacher's on the origin, an invited student's on the student's node)
// once from that node, over a node-to-node peer connection signaled by
// NATS request/reply, and offers it to its own participants as the
// publisher's stream. The publishing node answers with a Viewer, the WHEP
// machinery, so the relay is one more subscriber there: a stream of a
// class on k nodes costs its node k-1 relays.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/cluster"
	"lectern/sfu"
)

// relayRetries bounds the attempts to pull one stream announcement;
// each failure asks the class's nodes to announce their streams again.
const (
	relayRetries  = 5
	relayRetryGap = time.Second
)

// relayOffer is the opaque offer of cluster.RelayRequest: which stream,
// and the pulling node's SDP.
type relayOffer struct {
	Stream string `json:"stream"`
	SDP    string `json:"sdp"`
}

var errOnlyStudents = fmt.Errorf("%w: only students are moderated", ErrForbidden)

func errNoParticipant(id sfu.ParticipantID) error {
	return fmt.Errorf("%w: no participant %.64q", ErrNotFound, id)
}

// remoteStream is a stream another node announced.
type remoteStream struct {
	info    streamInfo
	teacher bool // its owner is a teacher
}

// streamEvent follows a stream of another node: pull it while this node
// has participants of the class, drop it when it ends.
func (l *clusterLink) streamEvent(r *room, from cluster.NodeID, rs remoteStream, ready bool) {
	info := rs.info
	r.mu.Lock()
	id := sfu.StreamID(info.Stream)
	cur := r.streams[id]
	if !ready {
		var toClose = r.endRelayLocked(cur, from)
		r.mu.Unlock()
		closeAll(toClose)
		return
	}
	if len(r.members) == 0 || (cur != nil && cur.relay && cur.relayFrom == from) || (cur != nil && !cur.relay) {
		r.mu.Unlock()
		return
	}
	toClose := r.endRelayLocked(cur, "")
	toClose = append(toClose, r.supersededLocked(from, sfu.ParticipantID(info.Owner), info.Label, rs.teacher)...)
	st := r.reserveRelayLocked(from, rs)
	r.mu.Unlock()
	closeAll(toClose)
	l.s.tasks.start(func() { l.pull(r, st, 0) })
}

// endRelayLocked ends st if it is a relay (from node from, when given).
func (r *room) endRelayLocked(st *stream, from cluster.NodeID) []io.Closer {
	if st == nil || !st.relay || (from != "" && st.relayFrom != from) {
		return nil
	}
	return r.endStreamLocked(st)
}

// endRelaysLocked ends the relays that st, published here, replaces.
func (r *room) endRelaysLocked(st *stream) []io.Closer {
	if st.relay {
		return nil
	}
	return r.supersededLocked("", st.owner.pid, st.label, st.teacher)
}

// supersededLocked ends the relays from nodes other than from (""
// when the new stream is published here) that a new stream replaces. A
// teacher stream replaces the teacher streams of its label: the node that
// sends it is the class's origin now, and what came from a former origin
// is stale. A student's stream replaces the same student's stream of its
// label: the student moved to another node. Relays from from itself end
// with their own announcements.
func (r *room) supersededLocked(from cluster.NodeID, owner sfu.ParticipantID, label string, teacher bool) []io.Closer {
	var toClose []io.Closer
	for _, other := range r.streams {
		if !other.relay || other.relayFrom == from || other.label != label || other.teacher != teacher {
			continue
		}
		if teacher || other.owner.pid == owner {
			toClose = append(toClose, r.endStreamLocked(other)...)
		}
	}
	return toClose
}

// reserveRelayLocked records the relayed stream under its publishing
// node's id; its owner is a stand-in for the publisher, who is not
// connected here.
func (r *room) reserveRelayLocked(from cluster.NodeID, rs remoteStream) *stream {
	info := rs.info
	role := auth.RoleStudent
	if rs.teacher {
		role = auth.RoleTeacher
	}
	owner := newStandIn(r.s)
	owner.pid = sfu.ParticipantID(info.Owner)
	owner.claims = auth.Claims{Participant: info.Owner, Role: role}
	owner.room = r
	owner.log = r.log.With().Str("relay_from", string(from)).Str("stream", info.Stream).Logger()
	st := &stream{
		room: r, owner: owner, serverID: sfu.StreamID(info.Stream), clientID: "relay",
		label: info.Label, teacher: rs.teacher, relay: true, relayFrom: from,
		done: make(chan struct{}), subs: map[*conn]*subscription{},
	}
	owner.pubs[st.clientID] = st
	r.streams[st.serverID] = st
	st.expected = len(info.Kinds)
	return st
}

// pull sets up the relay of st: offer, request to the origin, answer.
func (l *clusterLink) pull(r *room, st *stream, attempt int) {
	err := l.negotiate(r, st)
	if err == nil {
		st.owner.log.Info().Msg("signaling: relaying a stream of another node")
		return
	}
	r.endStream(st)
	st.owner.log.Warn().Err(err).Int("attempt", attempt+1).Msg("signaling: relay failed")
	if attempt+1 >= relayRetries || errors.Is(err, cluster.ErrNotOrigin) {
		return
	}
	select {
	case <-l.stop:
	case <-time.After(relayRetryGap):
		if l.s.hub.lookup(r.id) == r {
			l.publish(r.id, clusterEvent{Type: evHello})
		}
	}
}

func (l *clusterLink) negotiate(r *room, st *stream) error {
	eng := l.s.opts.Engine
	if eng == nil {
		return ErrNoEngine
	}
	cfg := r.publisherConfig(st)
	cfg.StreamID = st.serverID
	pub, offer, err := eng.NewPuller(cfg)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(relayOffer{Stream: string(st.serverID), SDP: offer.SDP})
	ctx, cancel := context.WithTimeout(context.Background(), cluster.DefaultRelayTimeout)
	defer cancel()
	answer, err := l.node.Bus.RequestRelay(ctx, st.relayFrom, r.id, body)
	if err == nil {
		err = pub.SetAnswer(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)})
	}
	if err != nil {
		_ = pub.Close()
		return err
	}
	r.mu.Lock()
	alive := len(r.members) > 0
	r.mu.Unlock()
	if !alive || !r.attach(st, pub, st.expected, "", "") {
		_ = pub.Close()
		return nil // the class left this node meanwhile
	}
	r.checkReady(st)
	return nil
}

// serveRelay answers a relay request at the node where the stream is
// published: a viewer of the stream, sourced from its tracks.
func (l *clusterLink) serveRelay(_ context.Context, req cluster.RelayRequest) ([]byte, error) {
	var o relayOffer
	if err := json.Unmarshal(req.Offer, &o); err != nil || o.SDP == "" {
		return nil, fmt.Errorf("%w: malformed relay offer", cluster.ErrInvalid)
	}
	r := l.s.hub.lookup(req.Room)
	if r == nil {
		return nil, cluster.ErrNotOrigin
	}
	r.mu.Lock()
	st := r.streams[sfu.StreamID(o.Stream)]
	if st == nil || !st.ready || st.ended || st.relay {
		r.mu.Unlock()
		return nil, cluster.ErrNotOrigin
	}
	tracks := append([]*sfu.Track(nil), st.tracks...)
	r.mu.Unlock()
	eng := l.s.opts.Engine
	if eng == nil {
		return nil, ErrNoEngine
	}
	var v *sfu.Viewer
	v, answer, err := eng.NewViewer(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: o.SDP}, sfu.ViewerConfig{
		Logger:   r.log.With().Str("relay_to", string(req.From)).Str("stream", o.Stream).Logger(),
		StreamID: st.serverID,
		OnClose:  func() { r.dropOut(st, v) },
	})
	if err != nil {
		return nil, err
	}
	for _, t := range tracks {
		_ = v.SetSource(t.Kind(), t)
	}
	r.mu.Lock()
	if st.ended {
		r.mu.Unlock()
		_ = v.Close()
		return nil, cluster.ErrNotOrigin
	}
	if st.outs == nil {
		st.outs = map[*sfu.Viewer]struct{}{}
	}
	st.outs[v] = struct{}{}
	r.mu.Unlock()
	r.log.Info().Str("to", string(req.From)).Str("stream", o.Stream).Msg("signaling: relay to another node")
	return []byte(answer.SDP), nil
}

// dropOut forgets a relay viewer whose peer connection ended.
func (r *room) dropOut(st *stream, v *sfu.Viewer) {
	r.mu.Lock()
	delete(st.outs, v)
	r.mu.Unlock()
}
