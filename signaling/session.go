package signaling

// WHIP (RFC 9725) and WHEP sessions: what the two have in common. A
// session is one peer connection set up over HTTP, with a participant in
// its class: a headless conn, a conn without a websocket, so that the
// room's rules (listing, streams, bans, shutdown) apply to it unchanged.
//
// Lock order: session.mu (PATCH and follow) is taken before hub.mu and
// room.mu; sessionTable.mu is a leaf. As elsewhere, no sfu call is made
// with hub.mu or room.mu held.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"

	"lectern/auth"
	"lectern/sfu"
)

// sessionKind is "whip" or "whep", also the first segment of its URLs.
type sessionKind string

const (
	kindWHIP sessionKind = "whip"
	kindWHEP sessionKind = "whep"
)

const (
	ctypeSDP  = "application/sdp"
	ctypeFrag = "application/trickle-ice-sdpfrag"
)

// icePeer is the sfu side of a session that PATCH works on.
type icePeer interface {
	AddICECandidate(webrtc.ICECandidateInit) error
	RestartICE(ufrag, pwd string) (webrtc.SessionDescription, error)
	RemoteICE() (ufrag, pwd string)
}

// session is one WHIP publisher or WHEP viewer.
type session struct {
	s     *Server
	id    string
	kind  sessionKind
	owner string // the token participant that made it; PATCH and DELETE must be the same
	hc    *conn  // its participant
	log   zerolog.Logger
	class sfu.RoomID
	room  *room // set once joined, before the session is shared
	label string

	// One of these, set before the session is shared.
	st     *stream
	pub    *sfu.Publisher
	viewer *sfu.Viewer

	gone     chan struct{} // the media side ended on its own
	goneOnce sync.Once
	done     chan struct{} // end ran
	endOnce  sync.Once

	mu   sync.Mutex // serializes ICE changes and source changes
	etag string     // the current ICE session's entity-tag (RFC 9725 4.3.1)

	expiry *time.Timer // ends the session when its token expires
}

func newSession(s *Server, kind sessionKind, owner string, room string) *session {
	x := &session{
		s: s, id: randomToken(18), kind: kind, owner: owner, class: sfu.RoomID(room),
		gone: make(chan struct{}), done: make(chan struct{}), etag: newETag(),
	}
	x.log = s.log.With().Str("room", room).Str("session", string(kind)+"/"+x.id[:8]).Logger()
	return x
}

// newHeadless makes the participant of a session: a conn with no
// websocket. It is marked closed from the start, so whatever the room
// sends it is dropped at once; its quit channel closes when the room
// closes it (removed, shutdown), which ends the session.
func (x *session) newHeadless(claims auth.Claims) *conn {
	c := newStandIn(x.s)
	c.claims, c.pid = claims, sfu.ParticipantID(claims.Participant)
	c.log = x.log.With().Str("participant", claims.Participant).Str("role", string(claims.Role)).Logger()
	x.hc = c
	return c
}

// headless reports whether c belongs to a WHIP or WHEP session.
func (c *conn) headless() bool { return c.ws == nil }

func (x *session) location() string {
	return "/" + string(x.kind) + "/" + url.PathEscape(string(x.room.id)) + "/" + x.id
}

func (x *session) peer() icePeer {
	if x.pub != nil {
		return x.pub
	}
	return x.viewer
}

// run waits for the session to end by itself: its participant closed by
// the room, or its peer connection gone.
func (x *session) run() {
	select {
	case <-x.hc.quit:
	case <-x.gone:
	case <-x.done:
	}
	x.end()
}

func (x *session) peerGone() { x.goneOnce.Do(func() { close(x.gone) }) }

// end takes the session down once: its participant leaves the class
// (ending a WHIP stream) and its peer connection closes.
func (x *session) end() {
	x.endOnce.Do(func() {
		if x.expiry != nil {
			x.expiry.Stop()
		}
		close(x.done)
		x.s.sessions.remove(x.id)
		if x.room != nil {
			x.room.leave(x.hc)
		}
		if x.viewer != nil {
			_ = x.viewer.Close()
		}
		x.hc.close(ErrLeft, false)
		x.log.Info().Msg("signaling: session ended")
	})
}

// sessionTable finds sessions by id.
type sessionTable struct {
	mu sync.Mutex // leaf lock
	m  map[string]*session
}

// addWithin adds x unless its owner already holds max sessions of its
// kind (0: no limit); check and add are one step, so concurrent POSTs of
// one token cannot all pass.
func (t *sessionTable) addWithin(x *session, max int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if max > 0 && t.ownedLocked(x.kind, x.owner) >= max {
		return false
	}
	if t.m == nil {
		t.m = map[string]*session{}
	}
	t.m[x.id] = x
	return true
}

// owned counts the sessions of kind that owner holds.
func (t *sessionTable) owned(kind sessionKind, owner string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ownedLocked(kind, owner)
}

func (t *sessionTable) ownedLocked(kind sessionKind, owner string) int {
	n := 0
	for _, x := range t.m {
		if x.kind == kind && x.owner == owner {
			n++
		}
	}
	return n
}

func (t *sessionTable) get(id string) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[id]
}

func (t *sessionTable) remove(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, id)
}

func (t *sessionTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// joinHeadless enters a session's participant into its class. It becomes
// the listed member unless a connection of the same participant already
// is one. It sets x.room under the room's lock, so whoever finds x in the
// room sees it.
func (h *hub) joinHeadless(x *session, id sfu.RoomID, info participantInfo) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := x.hc
	if h.closed {
		return ErrShuttingDown
	}
	if h.bans.banned(id, c.pid) {
		return ErrBanned
	}
	r := h.openLocked(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	c.room, x.room = r, r
	r.headless[c] = x
	h.s.audit.joined(id, c, string(x.kind), r.members[c.pid] != nil)
	if r.members[c.pid] == nil {
		delete(r.remote, c.pid)
		r.seq++
		m := &member{seq: r.seq, conn: c, info: info}
		r.members[c.pid] = m
		if m.listed() {
			r.broadcastLocked(encode(typeParticipantJoined, "", m.info), c)
			r.mirrorLocked(clusterEvent{Type: evJoined, Participant: &m.info})
		}
	}
	c.log.Info().Msg("signaling: joined over " + string(x.kind))
	return nil
}

// teacherLive reports whether the class has a teacher camera stream.
func (h *hub) teacherLive(id sfu.RoomID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[id]
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.teacherCameraLocked()
}

// teacherCameraLocked: a teacher camera stream exists (ready or not).
func (r *room) teacherCameraLocked() bool {
	for _, st := range r.streams {
		if st.teacher && st.label == labelCamera && !st.ended && !st.relay {
			return true
		}
	}
	return false
}

// handOverLocked keeps a participant in the class when its member
// connection leaves while one of its sessions lives on.
func (r *room) handOverLocked(m *member) bool {
	for hc := range r.headless {
		if string(hc.pid) == m.info.ID && !hc.left {
			m.conn = hc
			return true
		}
	}
	return false
}

// banHeadlessLocked ends the sessions of a removed participant.
func (r *room) banHeadlessLocked(pid sfu.ParticipantID) []io.Closer {
	var toClose []io.Closer
	for hc := range r.headless {
		if hc.pid == pid {
			toClose = append(toClose, r.detachLocked(hc)...)
			delete(r.headless, hc)
			hc.close(ErrBanned, false)
		}
	}
	return toClose
}

// whipLiveLocked: a WHIP publisher is the class's teacher camera.
func (r *room) whipLiveLocked() bool {
	for _, st := range r.streams {
		if st.owner.headless() && st.teacher && st.label == labelCamera && !st.ended && !st.relay {
			return true
		}
	}
	return false
}

// whepSessionsLocked lists the WHEP sessions to tell about st.
func (r *room) whepSessionsLocked(st *stream) []*session {
	if !st.teacher {
		return nil
	}
	var out []*session
	for _, x := range r.headless {
		if x != nil && x.kind == kindWHEP {
			out = append(out, x)
		}
	}
	return out
}

// teacherTracksLocked picks what a WHEP viewer shows: the video of the
// teacher's stream of label, and the audio of the teacher's camera stream.
// A stream counts from its first track, before it is announced to class
// pages (stream.ready), and ready streams come first.
func (r *room) teacherTracksLocked(label string) (video, audio *sfu.Track) {
	streams := r.readyStreamsLocked()
	for _, st := range r.streams {
		if !st.ready && !st.ended {
			streams = append(streams, st)
		}
	}
	for _, st := range streams {
		if !st.teacher {
			continue
		}
		for _, t := range st.tracks {
			switch {
			case t.Kind() == webrtc.RTPCodecTypeVideo && st.label == label && video == nil:
				video = t
			case t.Kind() == webrtc.RTPCodecTypeAudio && st.label == labelCamera && audio == nil:
				audio = t
			}
		}
	}
	return video, audio
}

// teacherTracks is teacherTracksLocked for a class by id (none when the
// class is not open).
func (h *hub) teacherTracks(id sfu.RoomID, label string) (video, audio *sfu.Track) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[id]
	if r == nil {
		return nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.teacherTracksLocked(label)
}

// --- HTTP ---

func (s *Server) httpMediaRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /whip/{room}", s.whipPost)
	m.HandleFunc("POST /whep/{room}", s.whepPost)
	for _, k := range []sessionKind{kindWHIP, kindWHEP} {
		base := "/" + string(k) + "/{room}"
		m.HandleFunc("OPTIONS "+base, s.mediaOptions)
		m.HandleFunc("OPTIONS "+base+"/{session}", s.mediaOptions)
		m.HandleFunc("PATCH "+base+"/{session}", s.withSession(k, s.patchSession))
		m.HandleFunc("DELETE "+base+"/{session}", s.withSession(k, s.deleteSession))
	}
}

// setCORS lets browser-based clients on other origins use the endpoints
// (RFC 9725 4.8). Any origin is allowed: the bearer token travels in a
// header, never in a cookie, so no ambient credential can be abused.
func setCORS(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch, Accept-Post")
}

// mediaOptions answers CORS preflights and plain OPTIONS requests.
func (s *Server) mediaOptions(w http.ResponseWriter, r *http.Request) {
	setCORS(w)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "POST, PATCH, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	h.Set("Access-Control-Max-Age", "600")
	if r.PathValue("session") == "" {
		h.Set("Allow", "OPTIONS, POST")
		h.Set("Accept-Post", ctypeSDP)
	} else {
		h.Set("Allow", "OPTIONS, PATCH, DELETE")
		h.Set("Accept-Patch", ctypeFrag)
	}
	w.WriteHeader(http.StatusNoContent)
}

// bearer verifies the request's bearer token, which must not be an
// invite.
func (s *Server) bearer(r *http.Request) (auth.Claims, error) {
	claims, err := s.bearerAny(r)
	if err == nil && claims.Invite {
		return claims, fmt.Errorf("%w: exchange the invite at /api/join first", ErrUnauthorized)
	}
	return claims, err
}

// bearerAny verifies the request's bearer token (RFC 6750 2.1): any
// class token, invites included, but no replay link.
func (s *Server) bearerAny(r *http.Request) (auth.Claims, error) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return auth.Claims{}, fmt.Errorf("%w: send the class token as Authorization: Bearer <token>", ErrUnauthorized)
	}
	claims, err := s.opts.Signer.Verify(tok)
	if err != nil {
		return claims, err
	}
	if claims.Replay() {
		return claims, fmt.Errorf("%w: a replay link opens only its recording", ErrForbidden)
	}
	return claims, nil
}

// checkRoom: the token covers the class named in the URL.
func checkRoom(claims auth.Claims, room string) error {
	if room == auth.AllRooms || !validRoom(room) {
		return fmt.Errorf("%w: not a class name", ErrForbidden)
	}
	if !claims.CoversRoom(room) {
		return ErrOtherRoom
	}
	return nil
}

// readBody reads a body of content type ctype, at most limit bytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, ctype string, wrongType error, limit int64) (string, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != ctype {
		return "", wrongType
	}
	body, err := s.readAll(w, r, limit)
	if err != nil {
		return "", err
	}
	if len(body) == 0 || !utf8.Valid(body) {
		return "", fmt.Errorf("%w: empty or not UTF-8", ErrBadSDP)
	}
	return string(body), nil
}

// mediaError turns the media plane's errors into the signaling sentinels
// that httpStatus maps (400, 422), keeping the detail after the sfu
// sentinel's own words.
func mediaError(err error) error {
	detail := func(sentinel error) string {
		return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
	}
	switch {
	case errors.Is(err, sfu.ErrUnsupportedCodec):
		return fmt.Errorf("%w: %s", ErrNoCodec, detail(sfu.ErrUnsupportedCodec))
	case errors.Is(err, sfu.ErrBadSDP):
		return fmt.Errorf("%w: %s", ErrBadSDP, detail(sfu.ErrBadSDP))
	case errors.Is(err, sfu.ErrBadCandidate):
		return fmt.Errorf("%w: bad ICE candidate: %s", ErrBadSDP, detail(sfu.ErrBadCandidate))
	case errors.Is(err, sfu.ErrClosed):
		return ErrShuttingDown
	}
	return err
}

// writeMediaError answers with err's status and a short plain-text reason.
func writeMediaError(w http.ResponseWriter, err error) {
	status := httpStatus(err)
	msg := clientMessage(err)
	if isAuthError(err) {
		msg = "invalid or expired token"
	}
	h := w.Header()
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="lectern"`)
	}
	setRetryAfter(h, err)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// writeCreated answers a POST: 201, the session's Location and ETag, the
// ICE servers and the SDP answer (RFC 9725 4.2).
func (s *Server) writeCreated(w http.ResponseWriter, r *http.Request, x *session, answer string) {
	h := w.Header()
	h.Set("Content-Type", ctypeSDP)
	h.Set("Location", x.location())
	h.Set("ETag", x.etag)
	h.Set("Accept-Patch", ctypeFrag)
	h.Set("Cache-Control", "no-store")
	for _, l := range linkHeaders(s.iceServers(x.hc.pid, x.hc.claims, requestHost(r))) {
		h.Add("Link", l)
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// linkHeaders announces ICE servers as RFC 9725 4.6 describes: one Link
// per URL with rel="ice-server" and, for TURN, the credentials.
func linkHeaders(servers []webrtc.ICEServer) []string {
	var out []string
	for _, srv := range servers {
		for _, u := range srv.URLs {
			v := "<" + u + `>; rel="ice-server"`
			if srv.Username != "" {
				v += "; username=" + quoteParam(srv.Username)
			}
			if cred, ok := srv.Credential.(string); ok && cred != "" {
				v += "; credential=" + quoteParam(cred) + `; credential-type="password"`
			}
			out = append(out, v)
		}
	}
	return out
}

// quoteParam makes an RFC 9110 5.6.4 quoted-string.
func quoteParam(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", "")
	return `"` + r.Replace(s) + `"`
}

// withSession resolves the session of a PATCH or DELETE and checks that
// the request carries a token of the participant that created it.
func (s *Server) withSession(k sessionKind, f func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		setCORS(w)
		claims, err := s.bearer(r)
		if err != nil {
			writeMediaError(w, err)
			return
		}
		x := s.sessions.get(r.PathValue("session"))
		if x == nil || x.kind != k || string(x.room.id) != r.PathValue("room") {
			writeMediaError(w, fmt.Errorf("%w: no such %s session", ErrNotFound, k))
			return
		}
		if claims.Participant != x.owner || !claims.CoversRoom(string(x.room.id)) {
			writeMediaError(w, fmt.Errorf("%w: the session belongs to another participant", ErrForbidden))
			return
		}
		f(w, r, x)
	}
}

func (s *Server) deleteSession(w http.ResponseWriter, _ *http.Request, x *session) {
	x.end()
	w.WriteHeader(http.StatusOK)
}

// patchSession applies trickled candidates (RFC 8840) or restarts ICE
// (RFC 9725 4.3).
func (s *Server) patchSession(w http.ResponseWriter, r *http.Request, x *session) {
	body, err := s.readBody(w, r, ctypeFrag, ErrNotSDPFrag, maxFragBytes)
	if err != nil {
		writeMediaError(w, err)
		return
	}
	frag, err := parseSDPFrag(body)
	if err != nil {
		writeMediaError(w, err)
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	select {
	case <-x.done:
		writeMediaError(w, fmt.Errorf("%w: the session has ended", ErrNotFound))
		return
	default:
	}
	ifMatch := strings.TrimSpace(r.Header.Get("If-Match"))
	current, _ := x.peer().RemoteICE()
	// RFC 9725 4.3.3: a restart carries If-Match: *. A client without
	// If-Match that sends new credentials means a restart too.
	if ifMatch == "*" || (ifMatch == "" && frag.ufrag != "" && frag.ufrag != current) {
		x.restartICE(w, frag)
		return
	}
	if (ifMatch != "" && ifMatch != x.etag) || (frag.ufrag != "" && frag.ufrag != current) {
		writeMediaError(w, fmt.Errorf("%w: restart ICE or use the current ETag", ErrStaleICE))
		return
	}
	if err := x.addCandidates(frag.cands); err != nil {
		writeMediaError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (x *session) addCandidates(cands []webrtc.ICECandidateInit) error {
	for _, c := range cands {
		if err := x.peer().AddICECandidate(c); err != nil {
			return mediaError(err)
		}
	}
	return nil
}

// restartICE answers an ICE restart with the server's new credentials and
// a new ETag. A failed restart leaves the session as it was (RFC 9725
// 4.3.3: the session is not terminated).
func (x *session) restartICE(w http.ResponseWriter, frag sdpFrag) {
	answer, err := x.peer().RestartICE(frag.ufrag, frag.pwd)
	if err != nil {
		writeMediaError(w, mediaError(err))
		return
	}
	x.etag = newETag()
	if err := x.addCandidates(frag.cands); err != nil {
		x.log.Info().Err(err).Msg("signaling: candidate of an ICE restart refused")
	}
	x.log.Info().Msg("signaling: ICE restarted")
	w.Header().Set("Content-Type", ctypeFrag)
	w.Header().Set("ETag", x.etag)
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, answerFrag(answer.SDP))
}

// randomToken returns n random bytes, URL-safe base64: unguessable ids.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newETag returns a strong entity-tag (RFC 9110 8.8.3) for an ICE session.
func newETag() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return `"` + hex.EncodeToString(b) + `"`
}
