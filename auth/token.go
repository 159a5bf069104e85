// Package auth mints and verifies Lectern's join tokens.
//
// A token is a JSON Web Token (RFC 7519) signed with HMAC-SHA256 ("HS256",
// RFC 7518 section 3.2) under the service's shared secret, so a school
// system can mint tokens with any JWT library. Only HS256 is accepted: the
// "alg" header is checked, never trusted (RFC 8725 section 3.1).
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Role is what a participant may do in a class.
type Role string

// Roles.
const (
	RoleTeacher  Role = "teacher"
	RoleStudent  Role = "student"
	RoleOperator Role = "operator"
)

// AllRooms is the room an operator token may name to cover every class.
const AllRooms = "*"

// MinSecretLen is the shortest accepted signing secret, in bytes.
const MinSecretLen = 32

// Claims are what a token carries.
type Claims struct {
	Room string `json:"room"`
	Role Role   `json:"role"`
	Name string `json:"name,omitempty"`
	// Title is the class's title, shown on the class page (at most 200 bytes).
	Title       string `json:"title,omitempty"`
	Participant string `json:"sub"`
	IssuedAt    int64  `json:"iat,omitempty"`
	// NotBefore: the token is refused before this time (RFC 7519
	// section 4.1.5); 0: from the start.
	NotBefore int64 `json:"nbf,omitempty"`
	Expiry    int64 `json:"exp"`
	// Invite marks a class invite link: it is exchanged for a personal
	// student token (POST /api/join) and never joins a class itself.
	Invite bool `json:"inv,omitempty"`
	// Recording marks a replay token: it opens the recording (session) it
	// names, and nothing else. It never joins a class; only students hold
	// one (the links a teacher or operator mints for the class).
	Recording string `json:"rec,omitempty"`
}

// Replay reports whether the token is a replay token (claim rec).
func (c Claims) Replay() bool { return c.Recording != "" }

// Valid reports whether the role is known and room, participant and expiry are set.
func (c Claims) Valid() bool {
	switch c.Role {
	case RoleTeacher, RoleStudent:
		if c.Room == "" || c.Room == AllRooms {
			return false
		}
	case RoleOperator:
		if c.Room == "" {
			return false
		}
	default:
		return false
	}
	if c.Invite && c.Role != RoleStudent {
		return false
	}
	if c.Recording != "" && (c.Role != RoleStudent || c.Invite || len(c.Recording) > 64) {
		return false
	}
	return c.Participant != "" && c.Expiry > 0 && len(c.Name) <= 64 && len(c.Title) <= 200 && c.validUTF8()
}

// validUTF8: JSON carries text only (RFC 8259 8.1), and encoding/json
// would turn invalid bytes into U+FFFD, so the token would carry other
// claims than those minted, longer ones even (a 64-byte name of invalid
// bytes verifies as 192 bytes, past the limit).
func (c Claims) validUTF8() bool {
	for _, s := range []string{c.Room, string(c.Role), c.Name, c.Title, c.Participant, c.Recording} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// ValidAt reports whether t is within the token's validity period:
// not before nbf, before exp.
func (c Claims) ValidAt(t time.Time) bool {
	return t.Unix() < c.Expiry && t.Unix() >= c.NotBefore
}

// CoversRoom reports whether the token grants entry to room.
func (c Claims) CoversRoom(room string) bool {
	return c.Room == room || (c.Role == RoleOperator && c.Room == AllRooms)
}

// Signer mints and verifies tokens under one secret.
type Signer struct {
	secret []byte
	now    func() time.Time
}

// NewSigner returns a signer; the secret must be at least MinSecretLen bytes.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < MinSecretLen {
		return nil, ErrSecret
	}
	return &Signer{secret: append([]byte(nil), secret...), now: time.Now}, nil
}

// NewRandomSecret returns a fresh hex-encoded 32-byte secret.
func NewRandomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: random secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// NewParticipantID returns a random participant id.
func NewParticipantID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// maxTokenLen bounds what Verify reads; Mint refuses to make longer ones.
const maxTokenLen = 4096

// header is the fixed JOSE header of every token Lectern mints.
const header = `{"alg":"HS256","typ":"JWT"}`

// Mint signs claims valid for ttl from now. A zero Participant gets a random one.
func (s *Signer) Mint(c Claims, ttl time.Duration) (string, error) {
	now := s.now()
	if c.Participant == "" {
		c.Participant = NewParticipantID()
	}
	c.IssuedAt = now.Unix()
	c.Expiry = now.Add(ttl).Unix()
	if !c.Valid() || ttl <= 0 {
		return "", ErrClaims
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("auth: encode claims: %w", err)
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(body)
	tok := signing + "." + enc.EncodeToString(s.sign(signing))
	if len(tok) > maxTokenLen {
		return "", ErrClaims // Verify would refuse it
	}
	return tok, nil
}

// Verify checks the token's form, algorithm, signature, validity period
// (nbf and exp) and claims.
func (s *Signer) Verify(token string) (Claims, error) {
	var c Claims
	if len(token) > maxTokenLen {
		return c, ErrMalformed
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, ErrMalformed
	}
	// Strict: the unused bits of a last character must be zero (RFC
	// 4648 3.5), or one token would have several spellings that verify.
	enc := base64.RawURLEncoding.Strict()
	hdrRaw, err1 := enc.DecodeString(parts[0])
	body, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return c, ErrMalformed
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hdrRaw, &hdr) != nil {
		return c, ErrMalformed
	}
	if hdr.Alg != "HS256" || !hmac.Equal(sig, s.sign(parts[0]+"."+parts[1])) {
		return c, ErrSignature
	}
	if json.Unmarshal(body, &c) != nil {
		return Claims{}, ErrMalformed
	}
	if !c.Valid() {
		return Claims{}, ErrClaims
	}
	if now := s.now().Unix(); now >= c.Expiry {
		return Claims{}, ErrExpired
	} else if now < c.NotBefore {
		return Claims{}, ErrNotYetValid
	}
	return c, nil
}

func (s *Signer) sign(signing string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(signing))
	return m.Sum(nil)
}
