package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"lectern/auth"
)

// TokenTTL is how long the tokens MintToken makes stay valid.
const TokenTTL = time.Hour

// MintToken signs a personal token for room; participant may be empty
// (a random id is chosen).
func MintToken(s *auth.Signer, room string, role auth.Role, name, participant string) (string, error) {
	return s.Mint(auth.Claims{Room: room, Role: role, Name: name, Participant: participant}, TokenTTL)
}

// MintInvite signs a class invite token (claim inv), the kind a student
// link carries.
func MintInvite(s *auth.Signer, room string) (string, error) {
	return s.Mint(auth.Claims{Room: room, Role: auth.RoleStudent, Invite: true}, TokenTTL)
}

// Class is the answer of POST /api/classes, with the tokens taken out of
// the links' fragments.
type Class struct {
	Room         string `json:"room"`
	TeacherURL   string `json:"teacher_url"`
	StudentURL   string `json:"student_url"`
	TeacherToken string `json:"-"`
	InviteToken  string `json:"-"`
}

// CreateClass creates a class through the lobby API (open auth mode only).
func CreateClass(ctx context.Context, baseURL, title, teacherName string) (Class, error) {
	var c Class
	body := map[string]string{"title": title, "teacher_name": teacherName}
	if err := postJSON(ctx, baseURL+"/api/classes", body, http.StatusCreated, &c); err != nil {
		return c, err
	}
	var err error
	if c.TeacherToken, err = fragmentToken(c.TeacherURL); err != nil {
		return c, err
	}
	if c.InviteToken, err = fragmentToken(c.StudentURL); err != nil {
		return c, err
	}
	return c, nil
}

// JoinInvite exchanges a class invite for a personal student token.
func JoinInvite(ctx context.Context, baseURL, invite, name string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	body := map[string]string{"token": invite, "name": name}
	if err := postJSON(ctx, baseURL+"/api/join", body, http.StatusOK, &out); err != nil {
		return "", err
	}
	if out.Token == "" {
		return "", fmt.Errorf("client: /api/join answered without a token")
	}
	return out.Token, nil
}

// fragmentToken takes the token out of a link such as /room/R#token=T.
func fragmentToken(link string) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("client: link %q: %w", link, err)
	}
	v, err := url.ParseQuery(u.Fragment)
	if err != nil || v.Get("token") == "" {
		return "", fmt.Errorf("client: link %q carries no token", link)
	}
	return v.Get("token"), nil
}

// postJSON posts body and decodes the answer into out when the status is
// want.
func postJSON(ctx context.Context, u string, body any, want int, out any) error {
	return doJSON(ctx, http.MethodPost, u, "", body, want, out)
}

// doJSON sends body (none when nil) with token as a bearer token (none
// when empty) and decodes the answer into out when the status is want.
// Each call has its own transport without keep-alive, so no idle
// connection outlives it.
func doJSON(ctx context.Context, method, u, token string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("client: request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("client: read answer: %w", err)
	}
	if resp.StatusCode != want {
		return &HTTPError{Status: resp.StatusCode, Body: strings.TrimSpace(string(raw))}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("client: decode answer of %s: %w", u, err)
	}
	return nil
}

// Ended is the answer of DELETE /api/rooms/{room}.
type Ended struct {
	Room string `json:"room"`
	// Participants are those the answering node closed (4010).
	Participants int `json:"participants"`
}

// EndClass ends room for everyone, on every node of the cluster, with a
// teacher token of the class or an operator token covering it.
func EndClass(ctx context.Context, baseURL, token, room string) (Ended, error) {
	var out Ended
	u := baseURL + "/api/rooms/" + url.PathEscape(room)
	err := doJSON(ctx, http.MethodDelete, u, token, nil, http.StatusOK, &out)
	return out, err
}
