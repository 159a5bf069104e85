package signaling

// Relays between nodes (docs/scaling.md): a node with participants of a
// class whose teacher publishes elsewhere pulls each teacher stream once
// from that node, over a node-to-node peer connection signaled by NATS
// request/reply, and offers it to its own participants as the teacher's
// stream. The origin answers with a Viewer, the WHEP machinery, so the
// relay is one more subscriber there: k nodes cost the origin k-1 streams.

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

// streamEvent follows a teacher stream of another node: pull it while
// this node has participants of the class, drop it when it ends.
func (l *clusterLink) streamEvent(r *room, from cluster.NodeID, info streamInfo, ready bool) {
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
	for _, st := range r.streams { // a relay of the same label from a former origin
		if st.relay && st.label == info.Label {
			toClose = append(toClose, r.endStreamLocked(st)...)
		}
	}
	st := r.reserveRelayLocked(from, info)
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

// endRelaysLocked ends the relays of st's label when the teacher publishes
// st here: this node is the class's origin now, and what it relayed from a
// former origin is stale.
func (r *room) endRelaysLocked(st *stream) []io.Closer {
	if !st.teacher || st.relay {
		return nil
	}
	var toClose []io.Closer
	for _, other := range r.streams {
		if other.relay && other.label == st.label {
			toClose = append(toClose, r.endStreamLocked(other)...)
		}
	}
	return toClose
}

// reserveRelayLocked records the relayed stream under the origin's id; its
// owner is a stand-in for the teacher, who is not connected here.
func (r *room) reserveRelayLocked(from cluster.NodeID, info streamInfo) *stream {
	owner := newConn(r.s, nil)
	owner.closed.Store(true)
	owner.pid = sfu.ParticipantID(info.Owner)
	owner.claims = auth.Claims{Participant: info.Owner, Role: auth.RoleTeacher}
	owner.room = r
	owner.log = r.log.With().Str("relay_from", string(from)).Str("stream", info.Stream).Logger()
	st := &stream{
		room: r, owner: owner, serverID: sfu.StreamID(info.Stream), clientID: "relay",
		label: info.Label, teacher: true, relay: true, relayFrom: from,
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
		st.owner.log.Info().Msg("signaling: relaying the teacher's stream")
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

// serveRelay answers a relay request at the node where the teacher
// publishes: a viewer of the stream, sourced from its tracks.
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
