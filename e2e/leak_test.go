package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"lectern/auth"
	"lectern/client"
)

const cycles = 50

// TestJoinLeaveLeavesNoGoroutine joins and leaves a live class 50 times,
// each time receiving the teacher's stream; every fifth student is invited
// and publishes, so the teacher subscribes and unsubscribes too. Half the
// students leave properly, half vanish. Afterwards no goroutine started
// during the cycles may remain, in the server or the clients.
//
// Not parallel: the comparison covers the whole process.
func TestJoinLeaveLeavesNoGoroutine(t *testing.T) {
	srv := startServer(t, "tokens")
	room := newRoom()
	teacher := srv.dial(t, srv.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
	publishClip(t, teacher, clipIVF, clipOgg)

	cycle(t, srv, teacher, room, 0) // warm up lazily started parts
	before := goleak.IgnoreCurrent()
	for i := 1; i <= cycles; i++ {
		cycle(t, srv, teacher, room, i)
	}
	// The server may take a moment to notice the students that vanished.
	waitFor(t, 60*time.Second, fmt.Sprintf("no goroutine left after %d join/leave cycles", cycles), func() (bool, string) {
		err := goleak.Find(before)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	require.Empty(t, teacher.Subscriptions(), "teacher still subscribed to a gone student")
}

// cycle joins one student, waits for the teacher's media, optionally
// publishes, and leaves.
func cycle(t *testing.T, srv *server, teacher *client.Client, room string, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok := srv.token(t, room, auth.RoleStudent, fmt.Sprintf("Student %d", i))
	st, err := client.Dial(ctx, srv.base, tok, client.Options{Logger: clientLogger(t)})
	require.NoError(t, err, "cycle %d", i)
	waitFor(t, 30*time.Second, fmt.Sprintf("cycle %d: teacher media", i), func() (bool, string) {
		s := st.SubscriptionOf(teacher.ID(), client.LabelCamera)
		if s == nil {
			return false, "no offer"
		}
		return s.Video().Packets > 0 && s.Audio().Packets > 0, s.State().String()
	})
	if i%5 == 0 {
		speak(t, ctx, teacher, st, i)
	}
	if i%2 == 0 {
		require.NoError(t, st.Close())
		require.Equal(t, client.CloseNormal, st.CloseCode(), "cycle %d: %v", i, st.Err())
	} else {
		st.Abort()
	}
	waitFor(t, 15*time.Second, fmt.Sprintf("cycle %d: student gone", i), func() (bool, string) {
		_, ok := teacher.Participant(st.ID())
		return !ok && teacher.SubscriptionOf(st.ID(), client.LabelCamera) == nil, "still listed"
	})
}

// speak has the teacher invite st, which publishes audio the teacher receives.
func speak(t *testing.T, ctx context.Context, teacher, st *client.Client, i int) {
	t.Helper()
	require.NoError(t, teacher.Invite(st.ID()))
	waitFor(t, 10*time.Second, fmt.Sprintf("cycle %d: invitation", i), func() (bool, string) {
		return st.Me().CanPublish, "not invited yet"
	})
	media, err := client.NewPublisher(client.PublisherOptions{Ogg: clipOgg})
	require.NoError(t, err)
	defer media.Stop()
	pub, err := st.Publish(ctx, client.LabelCamera, media.Tracks())
	require.NoError(t, err, "cycle %d", i)
	require.NoError(t, pub.WaitConnected(ctx))
	media.Start()
	waitFor(t, 30*time.Second, fmt.Sprintf("cycle %d: teacher hears the student", i), func() (bool, string) {
		s := teacher.SubscriptionOf(st.ID(), client.LabelCamera)
		return s != nil && s.Stats(webrtc.RTPCodecTypeAudio).Packets > 0, "no audio yet"
	})
}
