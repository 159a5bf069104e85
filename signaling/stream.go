package signaling

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/cluster"
	"lectern/sfu"
)

// stream is one published stream: one publisher peer connection.
//
// Ids: the publishing client names its stream (clientID, [A-Za-z0-9_-]);
// everyone else knows it by serverID, "owner:clientID". The ':' keeps the
// two kinds apart, so the ids a connection uses never collide: a client
// sees its own streams under its own ids and the others' under theirs.
type stream struct {
	room     *room
	owner    *conn
	serverID sfu.StreamID
	clientID string
	label    string
	teacher  bool
	done     chan struct{} // closed when the stream ends

	// Guarded by room.mu.
	pub      *sfu.Publisher
	answered bool
	pending  []webrtc.ICECandidateInit // server candidates before the answer
	expected int
	tracks   []*sfu.Track
	waiting  bool
	ready    bool
	ended    bool
	subs     map[*conn]*subscription
	// relay: pulled from relayFrom, the node where it is published
	// (cluster_relay.go); outs: relays other nodes pull of this stream.
	relay     bool
	relayFrom cluster.NodeID
	outs      map[*sfu.Viewer]struct{}
}

// subscription is one viewer's subscriber peer connection to a stream.
type subscription struct {
	stream  *stream
	viewer  *conn
	sub     *sfu.Subscriber
	created time.Time

	// Guarded by room.mu.
	offered bool
	closed  bool
	pending []webrtc.ICECandidateInit // server candidates before the offer
}

// info describes the stream under the id its receiver knows it by.
func (st *stream) info(id string) streamInfo {
	kinds := []string{}
	seen := map[string]bool{}
	for _, t := range st.tracks {
		k := t.Kind().String()
		if !seen[k] {
			seen[k] = true
			kinds = append(kinds, k)
		}
	}
	sort.Strings(kinds) // "audio" before "video"
	return streamInfo{Stream: id, Owner: string(st.owner.pid), Label: st.label, Kinds: kinds}
}

// publish answers a client's offer and starts a stream.
func (c *conn) publish(rid string, d *publishData) error {
	r := c.room
	st, err := r.reserve(c, d)
	if err != nil {
		return err
	}
	eng := c.s.opts.Engine
	if eng == nil {
		r.endStream(st)
		return ErrNoEngine
	}
	offer := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: d.SDP}
	pub, answer, err := eng.NewPublisher(offer, r.publisherConfig(st))
	if err != nil {
		r.endStream(st)
		if !errors.Is(err, sfu.ErrBadSDP) {
			c.log.Warn().Err(err).Msg("signaling: cannot publish")
		}
		return err
	}
	if !r.attach(st, pub, pub.ExpectedTracks(), rid, answer.SDP) {
		_ = pub.Close()
		return fmt.Errorf("%w: the stream ended before it started", ErrNotFound)
	}
	c.log.Info().Str("stream", d.Stream).Str("label", d.Label).Msg("signaling: publishing")
	r.checkReady(st)
	return nil
}

func (r *room) publisherConfig(st *stream) sfu.PublisherConfig {
	return sfu.PublisherConfig{
		Logger:  st.owner.log.With().Str("stream", st.clientID).Logger(),
		OnTrack: func(t *sfu.Track) { r.onTrack(st, t) },
		OnICECandidate: func(ci webrtc.ICECandidateInit) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if st.answered {
				st.owner.sendMsg(typeICE, "", iceOut{Stream: st.clientID, Candidate: ci})
			} else {
				st.pending = append(st.pending, ci)
			}
		},
		OnClose: func() { r.s.tasks.start(func() { r.endStream(st) }) },
		OnPath:  func(p sfu.Path) { r.setPath(st.owner.pid, p) },
	}
}

// reserve checks that c may publish d and records the stream.
func (r *room) reserve(c *conn, d *publishData) (*stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[c.pid]
	if c.left || m == nil || m.conn != c {
		return nil, fmt.Errorf("%w: not in the class", ErrForbidden)
	}
	switch c.claims.Role {
	case auth.RoleTeacher:
	case auth.RoleStudent:
		if d.Label != labelCamera {
			return nil, fmt.Errorf("%w: students publish only a camera", ErrForbidden)
		}
		if !m.info.CanPublish {
			return nil, fmt.Errorf("%w: wait for the teacher's invitation to speak", ErrForbidden)
		}
	default:
		return nil, fmt.Errorf("%w: %s does not publish", ErrForbidden, c.claims.Role)
	}
	if c.pubs[d.Stream] != nil {
		return nil, fmt.Errorf("%w: stream id %q in use", ErrConflict, d.Stream)
	}
	for _, other := range c.pubs {
		if other.label == d.Label {
			return nil, fmt.Errorf("%w: already publishing a %s stream", ErrConflict, d.Label)
		}
	}
	if c.claims.Role == auth.RoleTeacher && d.Label == labelCamera && r.whipLiveLocked() {
		return nil, fmt.Errorf("%w: the class is live from a WHIP publisher", ErrConflict)
	}
	st := &stream{
		room: r, owner: c, clientID: d.Stream, label: d.Label,
		serverID: sfu.StreamID(string(c.pid) + ":" + d.Stream),
		teacher:  c.claims.Role == auth.RoleTeacher,
		done:     make(chan struct{}),
		subs:     map[*conn]*subscription{},
	}
	c.pubs[d.Stream] = st
	r.streams[st.serverID] = st
	return st, nil
}

// attach gives a reserved stream its publisher and queues the answer,
// then any candidate that came first; false if the stream ended meanwhile.
func (r *room) attach(st *stream, pub *sfu.Publisher, expected int, rid, sdp string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st.ended {
		return false
	}
	st.pub, st.expected, st.answered = pub, expected, true
	st.owner.sendMsg(typeAnswer, rid, answerData{Stream: st.clientID, SDP: sdp})
	for _, ci := range st.pending {
		st.owner.sendMsg(typeICE, "", iceOut{Stream: st.clientID, Candidate: ci})
	}
	st.pending = nil
	return true
}

// onTrack collects a stream's tracks; the stream is ready with all of
// them, or a moment (timings.ready, 3 s) after the first with those it
// has. A track that comes later still is added to the ready stream
// (addLate).
func (r *room) onTrack(st *stream, t *sfu.Track) {
	r.mu.Lock()
	if st.ended {
		r.mu.Unlock()
		return
	}
	st.tracks = append(st.tracks, t)
	if st.ready {
		r.mu.Unlock()
		r.addLate(st, t)
		return
	}
	startTimer := !st.waiting
	st.waiting = true
	full := st.expected > 0 && len(st.tracks) >= st.expected
	whep := r.whepSessionsLocked(st)
	r.mu.Unlock()
	if full {
		r.markReady(st)
		return
	}
	// WHEP viewers need no offer with every track: they take each as it
	// comes, so a class starting is watched from its first keyframe.
	if len(whep) > 0 {
		r.s.tasks.start(func() { followAll(whep) })
	}
	if startTimer {
		r.s.tasks.start(func() {
			timer := time.NewTimer(r.s.tm.ready)
			defer timer.Stop()
			select {
			case <-timer.C:
				r.markReady(st)
			case <-st.done:
			}
		})
	}
}

// addLate brings a track that arrived after its stream was announced (a
// publisher whose audio starts seconds after its video) to everyone who
// receives the stream. Nothing is renegotiated: each class page gets a
// fresh subscriber peer connection with every track, which replaces its
// old one as on a client's resubscribe; WHEP viewers and relays to other
// nodes take the track as the source of its kind; the recording takes
// the stream again, as after a reconnect.
func (r *room) addLate(st *stream, t *sfu.Track) {
	r.mu.Lock()
	if st.ended {
		r.mu.Unlock()
		return
	}
	tracks := append([]*sfu.Track(nil), st.tracks...)
	var viewers []*conn
	var old []io.Closer
	for v := range st.subs {
		if sub := r.takeSubLocked(v, st); sub != nil {
			viewers = append(viewers, v)
			old = append(old, sub.sub)
		}
	}
	outs := make([]*sfu.Viewer, 0, len(st.outs))
	for v := range st.outs {
		outs = append(outs, v)
	}
	whep := r.whepSessionsLocked(st)
	r.mu.Unlock()
	closeAll(old)
	st.owner.log.Info().Str("stream", st.clientID).Str("kind", t.Kind().String()).Msg("signaling: a late track joins its stream")
	for _, v := range outs {
		_ = v.SetSource(t.Kind(), t)
	}
	if !st.relay {
		r.s.rec.streamReady(r.id, st, tracks)
	}
	r.s.tasks.start(func() {
		followAll(whep)
		for _, v := range viewers {
			r.subscribe(v, st, tracks)
		}
	})
}

// takeSubLocked detaches c's subscription to st, if any, without telling
// c: a new offer for the same stream replaces it on the client.
func (r *room) takeSubLocked(c *conn, st *stream) *subscription {
	sub := c.subs[st.serverID]
	if sub == nil {
		return nil
	}
	sub.closed = true
	delete(c.subs, st.serverID)
	delete(st.subs, c)
	return sub
}

// checkReady covers tracks that arrived before the publisher was attached.
func (r *room) checkReady(st *stream) {
	r.mu.Lock()
	full := st.expected > 0 && len(st.tracks) >= st.expected
	r.mu.Unlock()
	if full {
		r.markReady(st)
	}
}

// markReady announces a stream and offers it to everyone else in the class.
func (r *room) markReady(st *stream) {
	r.mu.Lock()
	if st.ended || st.ready || len(st.tracks) == 0 {
		r.mu.Unlock()
		return
	}
	st.ready = true
	st.owner.sendMsg(typeStreamAdded, "", st.info(st.clientID))
	msg := encode(typeStreamAdded, "", st.info(string(st.serverID)))
	var viewers []*conn
	for _, m := range r.members {
		if m.conn != st.owner && !m.conn.headless() {
			m.conn.enqueue(msg)
			// A teacher's page is not offered the same teacher's WHIP stream.
			if m.conn.pid != st.owner.pid {
				viewers = append(viewers, m.conn)
			}
		}
	}
	r.updateLiveLocked()
	tracks := append([]*sfu.Track(nil), st.tracks...)
	whep := r.whepSessionsLocked(st)
	r.mirrorStreamLocked(st, true)
	replaced := r.endRelaysLocked(st)
	r.mu.Unlock()
	closeAll(replaced)
	st.owner.log.Info().Str("stream", st.clientID).Int("tracks", len(tracks)).Msg("signaling: stream ready")
	if !st.relay {
		r.s.rec.streamReady(r.id, st, tracks)
	}
	r.s.tasks.start(func() {
		followAll(whep)
		for _, v := range viewers {
			r.subscribe(v, st, tracks)
		}
	})
}

// offerAll offers a newly joined connection every ready stream.
func (r *room) offerAll(c *conn) {
	type job struct {
		st     *stream
		tracks []*sfu.Track
	}
	r.mu.Lock()
	var jobs []job
	for _, st := range r.readyStreamsLocked() {
		if st.owner.pid != c.pid {
			jobs = append(jobs, job{st, append([]*sfu.Track(nil), st.tracks...)})
		}
	}
	r.mu.Unlock()
	for _, j := range jobs {
		r.subscribe(c, j.st, j.tracks)
	}
}

func (r *room) readyStreamsLocked() []*stream {
	var out []*stream
	for _, st := range r.streams {
		if st.ready && !st.ended {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].serverID < out[j].serverID })
	return out
}

// subscribe builds v's subscriber peer connection to st and sends the offer.
func (r *room) subscribe(v *conn, st *stream, tracks []*sfu.Track) {
	eng := r.s.opts.Engine
	if eng == nil {
		return
	}
	sub := &subscription{stream: st, viewer: v, created: time.Now()}
	id := string(st.serverID)
	s, offer, err := eng.NewSubscriber(tracks, sfu.SubscriberConfig{
		Logger: v.log.With().Str("stream", id).Logger(),
		OnICECandidate: func(ci webrtc.ICECandidateInit) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if sub.offered {
				v.sendMsg(typeICE, "", iceOut{Stream: id, Candidate: ci})
			} else {
				sub.pending = append(sub.pending, ci)
			}
		},
		OnClose: func() { r.s.tasks.start(func() { r.dropSub(sub) }) },
		OnPath:  func(p sfu.Path) { r.setPath(v.pid, p) },
	})
	if err != nil {
		v.log.Warn().Err(err).Str("stream", id).Msg("signaling: cannot subscribe")
		return
	}
	sub.sub = s
	if !r.register(sub, offer.SDP) {
		_ = s.Close()
	}
}

// resubscribeEvery bounds how often one viewer may ask for a fresh peer
// connection to one stream: each costs a DTLS handshake.
const resubscribeEvery = time.Second

// resubscribe gives c a fresh subscriber peer connection to a stream it
// receives. The client asks when its side failed (a phone moving between
// networks), rather than waiting the half minute the server's side takes
// to notice; the old peer connection is closed without stream_closed.
func (r *room) resubscribe(c *conn, id string) error {
	r.mu.Lock()
	st := r.streams[sfu.StreamID(id)]
	if st == nil || !st.ready || st.ended || st.owner == c {
		r.mu.Unlock()
		return fmt.Errorf("%w: no stream %.64q to receive", ErrNotFound, id)
	}
	old := c.subs[st.serverID]
	if old != nil && time.Since(old.created) < resubscribeEvery {
		r.mu.Unlock()
		return fmt.Errorf("%w: stream %.64q was offered less than a second ago", ErrConflict, id)
	}
	r.takeSubLocked(c, st)
	tracks := append([]*sfu.Track(nil), st.tracks...)
	r.mu.Unlock()
	if old != nil {
		_ = old.sub.Close()
	}
	r.subscribe(c, st, tracks)
	return nil
}

// register records a subscription and queues its offer; false if the
// stream ended, the viewer left or already has one, or the peer failed.
func (r *room) register(sub *subscription, sdp string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, v := sub.stream, sub.viewer
	if st.ended || v.left || sub.closed || v.subs[st.serverID] != nil {
		return false
	}
	v.subs[st.serverID] = sub
	st.subs[v] = sub
	sub.offered = true
	id := string(st.serverID)
	v.sendMsg(typeOffer, "", offerData{Stream: id, Owner: string(st.owner.pid), Label: st.label, SDP: sdp})
	for _, ci := range sub.pending {
		v.sendMsg(typeICE, "", iceOut{Stream: id, Candidate: ci})
	}
	sub.pending = nil
	return true
}

// dropSub forgets a subscriber whose peer connection closed or failed; the
// viewer is told to close its side.
func (r *room) dropSub(sub *subscription) {
	r.mu.Lock()
	sub.closed = true
	st, v := sub.stream, sub.viewer
	if v.subs[st.serverID] == sub {
		delete(v.subs, st.serverID)
		delete(st.subs, v)
		v.sendMsg(typeStreamClosed, "", streamRef{Stream: string(st.serverID)})
	}
	r.mu.Unlock()
	_ = sub.sub.Close()
}

// endStream ends a stream and closes its peers.
func (r *room) endStream(st *stream) {
	r.mu.Lock()
	toClose := r.endStreamLocked(st)
	r.mu.Unlock()
	closeAll(toClose)
}

// endStreamLocked ends a stream once: its owner and, if it was announced,
// everyone else get stream_closed. It returns the peers to close.
func (r *room) endStreamLocked(st *stream) []io.Closer {
	if st.ended {
		return nil
	}
	st.ended = true
	close(st.done)
	if st.owner.pubs[st.clientID] == st {
		delete(st.owner.pubs, st.clientID)
	}
	delete(r.streams, st.serverID)
	var toClose []io.Closer
	if st.pub != nil {
		toClose = append(toClose, st.pub)
	}
	for v, sub := range st.subs {
		if v.subs[st.serverID] == sub {
			delete(v.subs, st.serverID)
		}
		toClose = append(toClose, sub.sub)
	}
	st.subs = nil
	for v := range st.outs {
		toClose = append(toClose, v)
	}
	st.outs = nil
	if st.answered {
		st.owner.sendMsg(typeStreamClosed, "", streamRef{Stream: st.clientID})
	}
	if st.ready {
		r.broadcastLocked(encode(typeStreamClosed, "", streamRef{Stream: string(st.serverID)}), st.owner)
		r.updateLiveLocked()
		r.mirrorStreamLocked(st, false)
		if st.teacher && st.label == labelScreen && !st.relay {
			r.s.tasks.start(func() { r.s.rec.streamEnded(r.id, st) })
		}
	}
	return toClose
}

// updateLiveLocked broadcasts `live` when a teacher's camera starts or ends.
func (r *room) updateLiveLocked() {
	live := false
	for _, st := range r.streams {
		if st.ready && !st.ended && st.teacher && st.label == labelCamera {
			live = true
		}
	}
	if live != r.live {
		r.live = live
		r.broadcastLocked(encode(typeLive, "", liveData{Live: live}), nil)
	}
}

func (r *room) unpublish(c *conn, id string) error {
	r.mu.Lock()
	st := c.pubs[id]
	if st == nil {
		r.mu.Unlock()
		return fmt.Errorf("%w: no stream %.64q", ErrNotFound, id)
	}
	toClose := r.endStreamLocked(st)
	r.mu.Unlock()
	closeAll(toClose)
	return nil
}

// answer applies a client's answer to a server offer.
func (c *conn) answer(d *answerData) error {
	r := c.room
	r.mu.Lock()
	sub := c.subs[sfu.StreamID(d.Stream)]
	r.mu.Unlock()
	if sub == nil {
		return fmt.Errorf("%w: no offered stream %.64q", ErrNotFound, d.Stream)
	}
	err := sub.sub.SetAnswer(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP})
	if errors.Is(err, sfu.ErrClosed) {
		return nil // the stream_closed is on its way
	}
	return err
}

// iceTarget is a peer connection a client's candidates are added to.
type iceTarget interface {
	AddICECandidate(webrtc.ICECandidateInit) error
}

// addCandidate routes a trickled candidate to the client's own publisher
// or to one of its subscribers, by stream id.
func (c *conn) addCandidate(d *iceData) error {
	r := c.room
	var target iceTarget
	r.mu.Lock()
	if st := c.pubs[d.Stream]; st != nil && st.pub != nil {
		target = st.pub
	} else if sub := c.subs[sfu.StreamID(d.Stream)]; sub != nil {
		target = sub.sub
	}
	r.mu.Unlock()
	if target == nil {
		return fmt.Errorf("%w: no stream %.64q", ErrNotFound, d.Stream)
	}
	if d.Candidate == nil || d.Candidate.Candidate == "" {
		return nil // end of candidates (RFC 8838 section 4.4): nothing to do
	}
	err := target.AddICECandidate(*d.Candidate)
	if errors.Is(err, sfu.ErrClosed) {
		return nil
	}
	return err
}
