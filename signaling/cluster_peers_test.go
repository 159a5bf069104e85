package signaling

import (
	"testing"

	"github.com/stretchr/testify/require"

	"lectern/cluster"
)

// TestFirstContact: the first event other than a hello from a node makes
// the class resend its state and ask for the node's (its hello and our
// answer may have been lost while the subscriptions spread through the
// NATS cluster); later events, and a node first heard through its hello,
// do not.
func TestFirstContact(t *testing.T) {
	t.Parallel()
	r := &room{peers: map[cluster.NodeID]bool{}}
	steps := []struct {
		from cluster.NodeID
		typ  string
		want bool
	}{
		{"b", evJoined, true},
		{"b", evJoined, false},
		{"b", evHello, false},
		{"c", evHello, false},
		{"c", evChat, false},
		{"d", evStream, true},
	}
	for i, s := range steps {
		require.Equal(t, s.want, r.firstContact(s.from, s.typ), "step %d: %s from %s", i, s.typ, s.from)
	}
}
