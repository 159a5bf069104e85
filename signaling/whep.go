package signaling

// WHEP: any WHEP player watches a class. Unlike the class page, the client
// offers (receive-only) and the server answers, as the standard requires.
// The session follows the class's teacher: its down tracks are attached to
// the teacher's camera (or, with ?video=screen, screen share) video and
// camera audio when that stream is ready, and re-attached when the teacher
// goes live again, on the same peer connection.

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/sfu"
)

// whepViewerName names viewers whose token carries no name.
const whepViewerName = "WHEP viewer"

// whepPost: POST /whep/{room}[?video=camera|screen] with a student,
// teacher or operator token and a receive-only offer.
func (s *Server) whepPost(w http.ResponseWriter, r *http.Request) { s.postSession(w, r, s.startWHEP) }

func (s *Server) startWHEP(w http.ResponseWriter, r *http.Request) (*session, string, error) {
	room := r.PathValue("room")
	claims, err := s.bearer(r)
	if err != nil {
		return nil, "", err
	}
	if err := checkRoom(claims, room); err != nil {
		return nil, "", err
	}
	label, err := whepLabel(r)
	if err != nil {
		return nil, "", err
	}
	if err := s.route(auth.RoleStudent, sfu.RoomID(room)); err != nil {
		return nil, "", err
	}
	body, err := s.readBody(w, r, ctypeSDP, ErrNotSDP, maxSDPLen)
	if err != nil {
		return nil, "", err
	}
	if err := s.mayView(claims.Participant); err != nil {
		return nil, "", err
	}
	x := newSession(s, kindWHEP, claims.Participant, room)
	x.label = label
	info := x.viewerParticipant(claims)
	if s.hub.bans.banned(sfu.RoomID(room), sfu.ParticipantID(info.ID)) {
		return nil, "", ErrBanned
	}
	answer, err := x.answer(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: body})
	if err != nil {
		return nil, "", err
	}
	if err := s.hub.joinHeadless(x, sfu.RoomID(room), info); err != nil {
		_ = x.viewer.Close()
		return nil, "", err
	}
	if err := s.open(x); err != nil {
		return nil, "", err
	}
	x.follow()
	x.log.Info().Str("video", label).Msg("signaling: WHEP viewer joined")
	return x, answer, nil
}

// mayView: there is a media engine, and owner holds fewer WHEP sessions
// than allowed (checked again, atomically, in open: this check spares
// the work of a viewer bound to be refused).
func (s *Server) mayView(owner string) error {
	if s.opts.Engine == nil {
		return ErrNoEngine
	}
	if limit := s.opts.Limits.WHEPPerToken; s.sessions.owned(kindWHEP, owner) >= limit {
		return tooManySessions(limit)
	}
	return nil
}

// whepLabel reads ?video=: the teacher's camera (default) or screen share.
func whepLabel(r *http.Request) (string, error) {
	switch v := r.URL.Query().Get("video"); v {
	case "", labelCamera:
		return labelCamera, nil
	case labelScreen:
		return labelScreen, nil
	default:
		return "", fmt.Errorf("%w: video must be camera or screen, not %.32q", ErrBadRequest, v)
	}
}

// viewerParticipant makes the session's participant: a student of the
// class. A student's token gives its own id and name; any other token
// (teacher, operator) watches as a fresh participant, so the teacher
// stays the teacher.
func (x *session) viewerParticipant(claims auth.Claims) participantInfo {
	vc := claims
	vc.Role = auth.RoleStudent
	if claims.Role != auth.RoleStudent {
		vc.Participant = auth.NewParticipantID()
	}
	if vc.Name == "" {
		vc.Name = whepViewerName
	}
	x.newHeadless(vc)
	return participantInfo{ID: vc.Participant, Name: vc.Name, Role: string(auth.RoleStudent)}
}

// answer builds the viewer and answers its offer. If the teacher is live
// in a codec the offer lacks, the viewer would get no picture: that is a
// 422 naming the class's codec, rather than a black screen.
func (x *session) answer(offer webrtc.SessionDescription) (string, error) {
	v, answer, err := x.s.opts.Engine.NewViewer(offer, sfu.ViewerConfig{
		Logger:   x.log,
		StreamID: "lectern",
		OnClose:  x.peerGone,
		OnPath:   func(p sfu.Path) { x.s.reportPath(x.class, x.hc.pid, p) },
	})
	if err != nil {
		if !errors.Is(err, sfu.ErrBadSDP) && !errors.Is(err, sfu.ErrUnsupportedCodec) {
			x.log.Warn().Err(err).Msg("signaling: cannot answer a WHEP viewer")
		}
		return "", mediaError(err)
	}
	video, audio := x.s.hub.teacherTracks(x.class, x.label)
	for _, t := range []*sfu.Track{video, audio} {
		if t != nil && v.Offered(t.Kind()) && !v.Accepts(t) {
			_ = v.Close()
			return "", fmt.Errorf("%w: the class is sent in %s, which the offer lacks", ErrNoCodec, t.Codec().MimeType)
		}
	}
	x.viewer = v
	return answer.SDP, nil
}

// follow attaches the viewer to what the teacher sends now. It runs when
// the session starts and whenever a teacher stream becomes ready; a
// teacher stream that ends detaches itself (its tracks end).
func (x *session) follow() {
	x.mu.Lock()
	defer x.mu.Unlock()
	select {
	case <-x.done:
		return
	default:
	}
	r := x.room
	r.mu.Lock()
	video, audio := r.teacherTracksLocked(x.label)
	r.mu.Unlock()
	for kind, t := range map[webrtc.RTPCodecType]*sfu.Track{webrtc.RTPCodecTypeVideo: video, webrtc.RTPCodecTypeAudio: audio} {
		if t == nil {
			continue
		}
		if err := x.viewer.SetSource(kind, t); errors.Is(err, sfu.ErrUnsupportedCodec) {
			// Documented (docs/whip-whep.md): the viewer gets no media
			// of this kind until the teacher uses a codec it offered.
			x.log.Warn().Err(err).Msg("signaling: the teacher's codec is not in the WHEP viewer's offer; no media")
		}
	}
}

// followAll makes each session follow what the teacher sends now.
func followAll(sessions []*session) {
	for _, x := range sessions {
		x.follow()
	}
}
