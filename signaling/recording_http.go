package signaling

// The recordings' HTTP API and the replay page (docs/recording.md).
//
// Who may do what:
//   - start and stop a class's recording: a teacher or operator token of
//     the class, as a bearer token;
//   - list every recording: an operator token;
//   - read one recording and its media: an operator token covering its
//     class, or a replay token (claim rec) naming its session;
//   - mint a replay link: a teacher or operator token of its class.
//
// A <video> element cannot send an Authorization header, so the replay
// page trades its token (from the link's fragment) for an HttpOnly
// cookie scoped to /api/recordings/<id>/ (POST .../session); the media
// requests, ranges included, carry it. The token never appears in a URL.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"lectern/auth"
	"lectern/recording"
	"lectern/sfu"
)

// mediaCookie names the cookie holding a replay token for media requests.
const mediaCookie = "lectern_replay"

// replayParticipant is the participant id of replay tokens: they never
// join, so they name no one.
const replayParticipant = "replay"

func (s *Server) recordingRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /api/rooms/{room}/recording", s.startRecording)
	m.HandleFunc("DELETE /api/rooms/{room}/recording", s.stopRecording)
	m.HandleFunc("GET /api/recordings", s.listRecordings)
	m.HandleFunc("GET /api/recordings/{id}", s.withRecording(s.getRecording))
	m.HandleFunc("GET /api/recordings/{id}/media", s.withRecording(s.serveMedia))
	m.HandleFunc("POST /api/recordings/{id}/session", s.withRecording(s.mediaSession))
	m.HandleFunc("POST /api/recordings/{id}/link", s.mintLink)
	m.HandleFunc("GET /replay/{id}", s.servePage("replay.html"))
}

// recordingEntry is a recording as the API shows it (never its path).
type recordingEntry struct {
	ID       string           `json:"id"`
	Session  string           `json:"session"`
	Room     string           `json:"room"`
	Teacher  string           `json:"teacher"`
	Label    string           `json:"label"`
	Start    time.Time        `json:"start"`
	Duration float64          `json:"duration"` // seconds
	Size     int64            `json:"size"`
	Codecs   []string         `json:"codecs"`
	Complete bool             `json:"complete"`
	Repaired bool             `json:"repaired"`
	Media    string           `json:"media"`
	Parts    []recordingEntry `json:"parts,omitempty"`
}

func (s *Server) entry(info recording.Info) recordingEntry {
	codecs := info.Codecs
	if codecs == nil {
		codecs = []string{}
	}
	return recordingEntry{
		ID: string(info.ID), Session: string(sessionOf(info.ID)), Room: string(info.Room),
		Teacher: info.Teacher, Label: info.Label, Start: info.Start,
		Duration: info.Duration.Seconds(), Size: info.Size, Codecs: codecs,
		Complete: info.Complete, Repaired: s.rec.repaired(info.ID),
		Media: "/api/recordings/" + string(info.ID) + "/media",
	}
}

// classModerator checks a bearer token of a teacher or operator of room.
func (s *Server) classModerator(r *http.Request, room string) (auth.Claims, error) {
	claims, err := s.bearer(r)
	if err != nil {
		return claims, err
	}
	if err := checkRoom(claims, room); err != nil {
		return claims, err
	}
	if claims.Role != auth.RoleTeacher && claims.Role != auth.RoleOperator {
		return claims, fmt.Errorf("%w: only teachers and operators record", ErrForbidden)
	}
	return claims, nil
}

// actor names who acted with claims in audit events: the participant,
// or the role of a token that names none (an operator's).
func actor(claims auth.Claims) sfu.ParticipantID {
	if claims.Participant != "" {
		return sfu.ParticipantID(claims.Participant)
	}
	return sfu.ParticipantID(claims.Role)
}

type recordingState struct {
	ID         string           `json:"id"`
	Active     bool             `json:"active"`
	Recordings []recordingEntry `json:"recordings,omitempty"`
}

func (s *Server) startRecording(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	claims, err := s.classModerator(r, room)
	if err != nil {
		writeError(w, err)
		return
	}
	id, created, err := s.rec.start(sfu.RoomID(room), actor(claims))
	if err != nil {
		writeError(w, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, recordingState{ID: string(id), Active: true})
}

func (s *Server) stopRecording(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	claims, err := s.classModerator(r, room)
	if err != nil {
		writeError(w, err)
		return
	}
	id := s.rec.state(sfu.RoomID(room)).ID
	infos, err := s.rec.stopRoom(sfu.RoomID(room), actor(claims))
	if err != nil {
		writeError(w, err)
		return
	}
	out := recordingState{ID: id, Recordings: []recordingEntry{}}
	for _, info := range infos {
		out.Recordings = append(out.Recordings, s.entry(info))
	}
	writeJSON(w, http.StatusOK, out)
}

// listRecordings: every recording an operator token covers, newest first.
func (s *Server) listRecordings(w http.ResponseWriter, r *http.Request) {
	claims, err := s.bearer(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if claims.Role != auth.RoleOperator {
		writeError(w, fmt.Errorf("%w: operators only", ErrForbidden))
		return
	}
	if !s.rec.enabled() {
		writeError(w, ErrRecordingOff)
		return
	}
	all, err := s.rec.cat.List()
	if err != nil {
		s.log.Warn().Err(err).Msg("recording: catalog")
	}
	out := []recordingEntry{}
	for _, info := range all {
		if claims.CoversRoom(string(info.Room)) {
			out = append(out, s.entry(info))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"recordings": out})
}

// recToken finds the token of a recording request: the Authorization
// header, else the media cookie.
func recToken(r *http.Request) string {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	if c, err := r.Cookie(mediaCookie); err == nil {
		return c.Value
	}
	return ""
}

// mayOpen: an operator of the recording's class, or a replay token of
// its session. A class token of a teacher or student opens nothing.
func mayOpen(claims auth.Claims, info recording.Info) error {
	if claims.Replay() {
		if claims.Recording == string(sessionOf(info.ID)) && claims.Room == string(info.Room) {
			return nil
		}
		return fmt.Errorf("%w: the link is for another recording", ErrForbidden)
	}
	if claims.Role == auth.RoleOperator && !claims.Invite && claims.CoversRoom(string(info.Room)) {
		return nil
	}
	return fmt.Errorf("%w: recordings open with an operator token or a replay link", ErrForbidden)
}

// withRecording resolves {id} and checks that the request may open it.
func (s *Server) withRecording(f func(http.ResponseWriter, *http.Request, recording.Info, auth.Claims)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := recToken(r)
		if tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lectern"`)
			writeError(w, fmt.Errorf("%w: send a token as Authorization: Bearer <token>", ErrUnauthorized))
			return
		}
		claims, err := s.opts.Signer.Verify(tok)
		if err != nil {
			writeError(w, err)
			return
		}
		if !s.rec.enabled() {
			writeError(w, ErrRecordingOff)
			return
		}
		info, err := s.rec.cat.Get(recording.RecordingID(r.PathValue("id")))
		if err != nil {
			writeError(w, err)
			return
		}
		if err := mayOpen(claims, info); err != nil {
			writeError(w, err)
			return
		}
		f(w, r, info, claims)
	}
}

// getRecording: one recording, with every part of its session the
// caller may open.
func (s *Server) getRecording(w http.ResponseWriter, _ *http.Request, info recording.Info, claims auth.Claims) {
	e := s.entry(info)
	for _, p := range s.sessionParts(info) {
		if mayOpen(claims, p) == nil {
			e.Parts = append(e.Parts, s.entry(p))
		}
	}
	writeJSON(w, http.StatusOK, e)
}

// sessionParts lists the files of info's session, info's own included.
func (s *Server) sessionParts(info recording.Info) []recording.Info {
	all, _ := s.rec.cat.List()
	sess := sessionOf(info.ID)
	var out []recording.Info
	for _, p := range all {
		if sessionOf(p.ID) == sess && p.Room == info.Room {
			out = append(out, p)
		}
	}
	return out
}

// serveMedia serves the file with range requests (RFC 9110 14), so a
// player seeks without downloading it all.
func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request, info recording.Info, _ auth.Claims) {
	f, err := os.Open(info.Path)
	if err != nil {
		writeError(w, fmt.Errorf("%w: the recording's file is gone", ErrNotFound))
		return
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		writeError(w, err)
		return
	}
	ctype := "video/webm"
	if filepath.Ext(info.Path) == ".mkv" {
		ctype = "video/x-matroska"
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "private, no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, filepath.Base(info.Path), st.ModTime(), f)
}

// mediaSession sets the cookie the replay page's <video> sends: a replay
// token of the session, scoped to each of its files' paths, HttpOnly
// (no script reads it) and SameSite=Strict (no other site sends it).
func (s *Server) mediaSession(w http.ResponseWriter, r *http.Request, info recording.Info, claims auth.Claims) {
	ttl := min(time.Until(time.Unix(claims.Expiry, 0)), s.rec.opts.LinkTTL)
	if ttl < time.Second {
		writeError(w, fmt.Errorf("%w: token about to expire", ErrUnauthorized))
		return
	}
	tok, err := s.mintReplay(info, claims.Name, ttl)
	if err != nil {
		writeError(w, err)
		return
	}
	for _, p := range s.sessionParts(info) {
		http.SetCookie(w, &http.Cookie{
			Name: mediaCookie, Value: tok, Path: "/api/recordings/" + string(p.ID) + "/",
			MaxAge: int(ttl.Seconds()), HttpOnly: true, Secure: s.httpsRequest(r), SameSite: http.SameSiteStrictMode,
		})
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) mintReplay(info recording.Info, name string, ttl time.Duration) (string, error) {
	if len(name) > maxNameRunes {
		name = ""
	}
	return s.opts.Signer.Mint(auth.Claims{
		Room: string(info.Room), Role: auth.RoleStudent, Name: name,
		Participant: replayParticipant, Recording: string(sessionOf(info.ID)),
	}, ttl)
}

type linkResponse struct {
	URL     string `json:"url"`
	Expires int64  `json:"expires"` // unix seconds
}

// mintLink makes a replay link for a class's students: /replay/{id} with
// a replay token in the fragment, valid for LinkTTL.
func (s *Server) mintLink(w http.ResponseWriter, r *http.Request) {
	claims, err := s.bearer(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if !s.rec.enabled() {
		writeError(w, ErrRecordingOff)
		return
	}
	info, err := s.rec.cat.Get(recording.RecordingID(r.PathValue("id")))
	if err != nil {
		writeError(w, err)
		return
	}
	if err := checkRoom(claims, string(info.Room)); err != nil {
		writeError(w, err)
		return
	}
	if claims.Role != auth.RoleTeacher && claims.Role != auth.RoleOperator {
		writeError(w, fmt.Errorf("%w: teachers and operators share recordings", ErrForbidden))
		return
	}
	ttl := s.rec.opts.LinkTTL
	tok, err := s.mintReplay(info, "", ttl)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, linkResponse{
		URL:     "/replay/" + string(sessionOf(info.ID)) + "#token=" + tok,
		Expires: time.Now().Add(ttl).Unix(),
	})
}
