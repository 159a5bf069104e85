package signaling

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"lectern/auth"
	"lectern/sfu"
)

const (
	maxBodyBytes = 16 << 10
	// maxStudentTTL caps a personal student token's validity.
	maxStudentTTL = 12 * time.Hour
	// inviteParticipant is the participant id carried by invite tokens; an
	// invite never joins, so it never names anyone.
	inviteParticipant = "invite"
)

// setPageHeaders sets the security headers of the pages. The CSP allows
// the page's own scripts and styles, camera and screen media, and the
// websocket back to the same host ('self' covers ws: and wss: of the
// page's own host, CSP Level 3 section 6.7.2.8), and to the other nodes
// of a cluster (nodes: their origins, cluster_origin.go). Nothing of the
// request, the Host header least of all, goes into the policy.
func setPageHeaders(w http.ResponseWriter, nodes []string) {
	h := w.Header()
	connect := "'self'"
	if len(nodes) > 0 {
		connect += " " + strings.Join(nodes, " ")
	}
	csp := "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data: blob:; media-src 'self' blob: mediastream:; " +
		"connect-src " + connect + "; " +
		"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)")
}

// servePage serves one HTML page of Options.Web.
func (s *Server) servePage(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Web == nil {
			http.NotFound(w, r)
			return
		}
		b, err := fs.ReadFile(s.opts.Web, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		setPageHeaders(w, s.connectSources())
		// The pages are small and change with each release: always revalidate.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(b)
	}
}

// assets serves Options.Web's assets/ directory, without listings.
func (s *Server) assets() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if s.opts.Web == nil || !strings.HasPrefix(name, "assets/") || !fs.ValidPath(name) {
			http.NotFound(w, r)
			return
		}
		b, err := fs.ReadFile(s.opts.Web, name)
		if err != nil { // missing, or a directory
			http.NotFound(w, r)
			return
		}
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = http.DetectContentType(b)
		}
		setPageHeaders(w, nil)
		w.Header().Set("Content-Type", ctype)
		// Asset names are not fingerprinted, so caches keep them only briefly.
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(b)
	})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, "ok\n")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.closing.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "shutting down\n")
		return
	}
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "draining\n")
		return
	}
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
	}
	_, _ = io.WriteString(w, "ready\n")
}

type classRequest struct {
	Title       string `json:"title"`
	TeacherName string `json:"teacher_name"`
}

type classResponse struct {
	Room       string `json:"room"`
	TeacherURL string `json:"teacher_url"`
	StudentURL string `json:"student_url"`
}

// createClass is the lobby: a fresh class with a teacher link and a
// student invite link. Only in open mode.
func (s *Server) createClass(w http.ResponseWriter, r *http.Request) {
	if s.opts.AuthMode != AuthOpen {
		writeError(w, ErrClosedMode)
		return
	}
	var req classRequest
	if err := s.readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if !validTitle(req.Title) {
		writeError(w, badField("title", "must be at most 200 printable characters and 200 bytes in UTF-8"))
		return
	}
	name := strings.TrimSpace(req.TeacherName)
	if !validName(name) {
		writeError(w, ErrBadName)
		return
	}
	room := newRoomID()
	ttl := s.opts.InviteTTL
	title := strings.TrimSpace(req.Title)
	teacher, err := s.opts.Signer.Mint(auth.Claims{Room: room, Role: auth.RoleTeacher, Name: name, Title: title}, ttl)
	if err != nil {
		writeError(w, err)
		return
	}
	invite, err := s.opts.Signer.Mint(auth.Claims{
		Room: room, Role: auth.RoleStudent, Participant: inviteParticipant, Invite: true, Title: title,
	}, ttl)
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info().Str("room", room).Msg("signaling: class created")
	writeJSON(w, http.StatusCreated, classResponse{
		Room:       room,
		TeacherURL: roomURL(room, teacher),
		StudentURL: roomURL(room, invite),
	})
}

type joinRequest struct {
	Token string `json:"token"`
	Name  string `json:"name"`
}

type joinResponse struct {
	Token string `json:"token"`
}

// exchangeInvite trades a class invite for a personal student token. It
// works in both auth modes: the invite itself is signed.
func (s *Server) exchangeInvite(w http.ResponseWriter, r *http.Request) {
	if err := allowOrRetry(s.joinIP, addrKey(s.clientAddr(r)), ErrTooManyJoins); err != nil {
		writeError(w, err)
		return
	}
	var req joinRequest
	if err := s.readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	inv, err := s.verifyInvite(req.Token)
	if err != nil {
		writeError(w, err)
		return
	}
	name := strings.TrimSpace(req.Name)
	if !validName(name) {
		writeError(w, ErrBadName)
		return
	}
	ttl := min(time.Until(time.Unix(inv.Expiry, 0)), maxStudentTTL)
	if ttl < time.Second {
		writeError(w, fmt.Errorf("%w: invite about to expire", ErrUnauthorized))
		return
	}
	pid := auth.NewParticipantID()
	tok, err := s.opts.Signer.Mint(auth.Claims{
		Room: inv.Room, Role: auth.RoleStudent, Name: name, Participant: pid, Title: inv.Title,
	}, ttl)
	if err != nil {
		writeError(w, err)
		return
	}
	s.audit.admitted(sfu.RoomID(inv.Room), pid)
	writeJSON(w, http.StatusOK, joinResponse{Token: tok})
}

// verifyInvite checks an invite token and spends one of its joins.
func (s *Server) verifyInvite(tok string) (auth.Claims, error) {
	inv, err := s.opts.Signer.Verify(tok)
	if err != nil {
		return inv, err
	}
	if !inv.Invite {
		return inv, fmt.Errorf("%w: not an invite token", ErrUnauthorized)
	}
	return inv, allowOrRetry(s.joinInvite, inviteKey(tok), ErrTooManyJoins)
}

// inviteKey names an invite in the join limiter: a hash, so a key costs
// the same whatever the token's length.
func inviteKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return string(h[:16])
}

// roomURL is a class page link; the token rides in the fragment, which
// browsers never send to servers nor leak in Referer headers.
func roomURL(room, token string) string {
	return "/room/" + url.PathEscape(room) + "#token=" + token
}

// newRoomID returns a random, URL-safe class id of 10 characters.
func newRoomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)[:10]
}

// validTitle: a class title is optional, at most 200 printable characters
// and 200 bytes, the token's own limit (auth.Claims.Valid).
func validTitle(s string) bool {
	if !utf8.ValidString(s) || len(s) > 200 {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// readJSON decodes a small JSON request body strictly.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return ErrUnsupportedMedia
	}
	body, err := s.readAll(w, r, maxBodyBytes)
	if err != nil {
		return err
	}
	if err := decodeStrict(body, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return nil
}

// readAll reads a request body of at most limit bytes; one that does not
// arrive within the body timeout (Handler) is a 408.
func (s *Server) readAll(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		return body, nil
	}
	var tooBig *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &tooBig):
		return nil, ErrBodyTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		// The connection cannot carry another request after a body
		// cut short.
		w.Header().Set("Connection", "close")
		return nil, fmt.Errorf("%w (%s)", ErrBodyTimeout, s.tm.body)
	}
	return nil, fmt.Errorf("%w: read body: %v", ErrBadRequest, err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	msg := clientMessage(err)
	if isAuthError(err) {
		msg = "invalid or expired token"
	}
	setRetryAfter(w.Header(), err)
	writeJSON(w, httpStatus(err), map[string]string{"error": msg})
}
