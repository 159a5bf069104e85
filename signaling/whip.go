package signaling

// WHIP (RFC 9725): a teacher goes live from OBS, GStreamer, ffmpeg or any
// other WHIP client. The session is the teacher's camera stream in the
// class, published through the same room logic as the class page's, so
// students on the page get stream_added, an offer and live.

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/sfu"
)

var errTeacherLive = fmt.Errorf("%w: the class's teacher is already live", ErrConflict)

// whipPost: POST /whip/{room} with a teacher's bearer token and an SDP
// offer answers 201 with the session's Location and the SDP answer.
func (s *Server) whipPost(w http.ResponseWriter, r *http.Request) { s.postSession(w, r, s.startWHIP) }

// postSession answers the POST that creates a WHIP or WHEP session: start
// makes it; a node that does not serve the class redirects (307), and
// errors map to their status (errors.go).
func (s *Server) postSession(w http.ResponseWriter, r *http.Request, start func(http.ResponseWriter, *http.Request) (*session, string, error)) {
	setCORS(w)
	if s.closing.Load() || !s.tasks.enter() {
		writeMediaError(w, ErrShuttingDown)
		return
	}
	defer s.tasks.exit()
	x, answer, err := start(w, r)
	if writeRedirect(w, r, err) {
		return
	}
	if err != nil {
		writeMediaError(w, err)
		return
	}
	s.writeCreated(w, r, x, answer)
}

func (s *Server) startWHIP(w http.ResponseWriter, r *http.Request) (*session, string, error) {
	room := r.PathValue("room")
	claims, err := s.bearer(r)
	if err != nil {
		return nil, "", err
	}
	if err := checkRoom(claims, room); err != nil {
		return nil, "", err
	}
	if claims.Role != auth.RoleTeacher {
		return nil, "", fmt.Errorf("%w: only the class's teacher publishes over WHIP", ErrForbidden)
	}
	if err := s.route(claims.Role, sfu.RoomID(room)); err != nil {
		return nil, "", err
	}
	body, err := s.readBody(w, r, ctypeSDP, ErrNotSDP, maxSDPLen)
	if err != nil {
		return nil, "", err
	}
	eng := s.opts.Engine
	if eng == nil {
		return nil, "", ErrNoEngine
	}
	offer := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: body}
	if err := eng.CheckPublishOffer(offer); err != nil {
		return nil, "", mediaError(err)
	}
	// Checked before joining too, so a refused publisher never shows up
	// in the participant list.
	if s.hub.teacherLive(sfu.RoomID(room)) {
		return nil, "", errTeacherLive
	}
	x := newSession(s, kindWHIP, claims.Participant, room)
	x.newHeadless(claims)
	info := participantInfo{ID: claims.Participant, Name: claims.Name, Role: string(auth.RoleTeacher)}
	if err := s.hub.joinHeadless(x, sfu.RoomID(room), info); err != nil {
		return nil, "", err
	}
	answer, err := x.publish(eng, offer)
	if err != nil {
		x.end()
		return nil, "", err
	}
	if err := s.open(x); err != nil {
		return nil, "", err
	}
	x.log.Info().Msg("signaling: WHIP publisher live")
	return x, answer, nil
}

// open registers a session, bounds its life by its token's expiry and
// starts its watcher. A WHEP session over the token's limit is ended
// (ErrTooManySessions); so is any once the server is stopping.
func (s *Server) open(x *session) error {
	limit := 0
	if x.kind == kindWHEP {
		limit = s.opts.Limits.WHEPPerToken
	}
	// Set before the session is shared: end reads it.
	x.expiry = time.AfterFunc(time.Until(time.Unix(x.hc.claims.Expiry, 0)), func() {
		x.log.Info().Msg("signaling: the session's token expired")
		x.end()
	})
	if !s.sessions.addWithin(x, limit) {
		x.end()
		return tooManySessions(limit)
	}
	if !s.tasks.start(x.run) {
		x.end()
		return ErrShuttingDown
	}
	return nil
}

// tooManySessions is the refusal of a WHEP session over the limit.
func tooManySessions(limit int) error {
	return retryAfter(fmt.Errorf("%w (at most %d at once; end one with DELETE first)", ErrTooManySessions, limit), 5*time.Second)
}

// publish reserves the class's teacher camera stream for the session and
// answers the offer.
func (x *session) publish(eng *sfu.Engine, offer webrtc.SessionDescription) (string, error) {
	r := x.room
	st, err := r.reserveWHIP(x)
	if err != nil {
		return "", err
	}
	pub, answer, err := eng.NewPublisher(offer, r.publisherConfig(st))
	if err != nil {
		r.endStream(st)
		if !errors.Is(err, sfu.ErrBadSDP) {
			x.log.Warn().Err(err).Msg("signaling: cannot publish over WHIP")
		}
		return "", mediaError(err)
	}
	if !r.attach(st, pub, pub.ExpectedTracks(), "", answer.SDP) {
		_ = pub.Close()
		return "", fmt.Errorf("%w: the stream ended before it started", ErrNotFound)
	}
	x.st, x.pub, x.gone = st, pub, st.done
	r.checkReady(st)
	return answer.SDP, nil
}

// reserveWHIP records the session's camera stream, unless the class's
// teacher is live already (from the page or another WHIP session).
func (r *room) reserveWHIP(x *session) (*stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := x.hc
	if c.left {
		return nil, fmt.Errorf("%w: the session was closed", ErrNotFound)
	}
	if r.teacherCameraLocked() {
		return nil, errTeacherLive
	}
	id := "whip-" + x.id[:8]
	st := &stream{
		room: r, owner: c, clientID: id, label: labelCamera,
		serverID: sfu.StreamID(string(c.pid) + ":" + id),
		teacher:  true,
		done:     make(chan struct{}),
		subs:     map[*conn]*subscription{},
	}
	c.pubs[id] = st
	r.streams[st.serverID] = st
	return st, nil
}
