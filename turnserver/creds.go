package turnserver

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST API specifies
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/pion/turn/v5"
)

// maxUsernameLen bounds the USERNAME attribute (RFC 8489 14.3: fewer than
// 509 bytes).
const maxUsernameLen = 508

// Credentials mints a participant's TURN credentials valid until expires
// (draft-uberti-behave-turn-rest-00 2.2): the username is the expiry in
// Unix seconds, a colon and the participant id; the password is
// base64(HMAC-SHA1(secret, username)).
func Credentials(secret []byte, participant string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + participant
	return username, passwordFor(secret, username)
}

// passwordFor is the password of username under secret.
func passwordFor(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	_, _ = mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// parseUsername splits a REST-API username into its expiry and
// participant; ok is false when it is malformed or expired at now.
func parseUsername(username string, now time.Time) (participant string, ok bool) {
	if len(username) > maxUsernameLen {
		return "", false
	}
	ts, participant, found := strings.Cut(username, ":")
	if !found || participant == "" {
		return "", false
	}
	exp, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || exp < now.Unix() {
		return "", false
	}
	return participant, true
}

// authHandler checks a request's username and derives the long-term key
// (RFC 8489 9.2.2) from the password the username implies. The user id
// it returns, the participant, is what allocations are counted by.
func (s *Server) authHandler(ra *turn.RequestAttributes) (string, []byte, bool) {
	participant, ok := parseUsername(ra.Username, s.now())
	if !ok {
		return "", nil, false
	}
	key := turn.GenerateAuthKey(ra.Username, ra.Realm, passwordFor(s.cfg.Secret, ra.Username))
	return participant, key, true
}
