package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"

	"lectern/sfu"
)

// NodeID names a node. It is one NATS subject token, so it holds only
// letters, digits, '-' and '_' (config.ValidNodeID applies the same rule).
type NodeID string

// maxNodeIDLen bounds a node id.
const maxNodeIDLen = 64

var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Valid reports whether id can name a node.
func (id NodeID) Valid() bool {
	return len(id) <= maxNodeIDLen && nodeIDPattern.MatchString(string(id))
}

// Subject prefixes.
const (
	nodesPrefix = "lectern.nodes."
	roomPrefix  = "lectern.room."
	nodePrefix  = "lectern.node."
)

func announceSubject(id NodeID) string { return nodesPrefix + string(id) }
func eventsSubject(room sfu.RoomID) string {
	return roomPrefix + roomToken(room) + ".events"
}
func relaySubject(id NodeID) string { return nodePrefix + string(id) + ".relay" }

// plainRoom is a class id that is already a valid subject token and KV key.
var plainRoom = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// roomToken turns a class id into one NATS subject token that is also a
// valid KV key. Ids of letters, digits, '-' and '_' (the lobby's) stay as
// they are, so operators can read them in `nats kv ls`; any other id
// becomes '=' and its unpadded base64url (RFC 4648 §5), which a plain id
// can never be mistaken for, since '=' is not among its characters.
func roomToken(room sfu.RoomID) string {
	if plainRoom.MatchString(string(room)) {
		return string(room)
	}
	return "=" + base64.RawURLEncoding.EncodeToString([]byte(room))
}

// tokenRoom inverts roomToken.
func tokenRoom(token string) (sfu.RoomID, error) {
	if len(token) > 0 && token[0] == '=' {
		b, err := base64.RawURLEncoding.DecodeString(token[1:])
		if err != nil {
			return "", fmt.Errorf("%w: room token %q", ErrInvalid, token)
		}
		return sfu.RoomID(b), nil
	}
	if !plainRoom.MatchString(token) {
		return "", fmt.Errorf("%w: room token %q", ErrInvalid, token)
	}
	return sfu.RoomID(token), nil
}

// checkRoom rejects an empty class id (the only one that has no token).
func checkRoom(room sfu.RoomID) error {
	if room == "" {
		return fmt.Errorf("%w: empty room id", ErrInvalid)
	}
	return nil
}

// newBoot is a random incarnation id: a node that restarts under the same
// NodeID gets a new one, so its claims from before the restart count as
// dead at once.
func newBoot() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux (Go 1.24+ panics instead)
	return hex.EncodeToString(b[:])
}
