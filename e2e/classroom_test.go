package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

const students = 20

// classroom is a running class: a teacher publishing the clip and students.
type classroom struct {
	srv      *server
	teacher  *client.Client
	media    *client.Publisher
	class    []*client.Client
	tokens   []string
	everyone []*client.Client
}

// TestClassroom runs a whole class over the real server: a teacher
// publishing the clip to 20 Go students, chat, hands, removal, and a
// student invited to speak.
func TestClassroom(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "tokens")
	room := newRoom()
	cr := &classroom{srv: srv}
	cr.teacher = srv.dial(t, srv.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
	cr.media, _ = publishClip(t, cr.teacher, clipIVF, clipOgg)
	require.Eventually(t, cr.teacher.Live, 10*time.Second, 20*time.Millisecond, "teacher live")

	cr.tokens = make([]string, students)
	for i := range cr.tokens {
		cr.tokens[i] = srv.token(t, room, auth.RoleStudent, fmt.Sprintf("Student %02d", i))
	}
	cr.class = dialAll(t, srv, cr.tokens)
	cr.everyone = append([]*client.Client{cr.teacher}, cr.class...)

	t.Run("media reaches every student", cr.mediaDelivery)
	t.Run("chat reaches everyone", cr.chat)
	t.Run("hands reach everyone", cr.hands)
	t.Run("removed student is disconnected for good", cr.remove)
	t.Run("student speaks after invitation", cr.speak)
}

func (cr *classroom) mediaDelivery(t *testing.T) {
	av := []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio}
	subs := findSubs(t, named(cr.class), cr.teacher.ID(), av)
	for name, s := range subs {
		v := s.Video()
		// The server primes a new subscriber from its cached group of
		// pictures, so video starts on a keyframe.
		require.False(t, v.FirstKeyframe.IsZero(), "%s: no keyframe", name)
		require.Equal(t, v.FirstPacket, v.FirstKeyframe, "%s: video did not start on a keyframe", name)
	}
	measureDelivery(t, cr.media, subs, av, 4*30) // 4 s of video
}

func (cr *classroom) chat(t *testing.T) {
	require.NoError(t, cr.class[0].Chat("hello from student 0"))
	require.NoError(t, cr.teacher.Chat("hello from the teacher"))
	waitAll(t, cr.everyone, "chat", func(c *client.Client) bool {
		return c.HasChat("hello from student 0") && c.HasChat("hello from the teacher")
	})
}

func (cr *classroom) hands(t *testing.T) {
	id := cr.class[1].ID()
	require.NoError(t, cr.class[1].Hand(true))
	waitAll(t, cr.everyone, "raised hand", func(c *client.Client) bool {
		p, ok := c.Participant(id)
		return ok && p.Hand
	})
	require.NoError(t, cr.teacher.LowerHand(id))
	waitAll(t, cr.everyone, "lowered hand", func(c *client.Client) bool {
		p, ok := c.Participant(id)
		return ok && !p.Hand
	})
}

func (cr *classroom) remove(t *testing.T) {
	gone := cr.class[2]
	id := gone.ID()
	require.NoError(t, cr.teacher.Remove(id))
	select {
	case <-gone.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("removed student still connected")
	}
	require.Equal(t, client.CloseForbidden, gone.CloseCode(), "close: %v", gone.Err())
	rest := append([]*client.Client{cr.teacher}, cr.class[3:]...)
	waitAll(t, rest, "participant_left", func(c *client.Client) bool {
		_, ok := c.Participant(id)
		return !ok
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := client.Dial(ctx, cr.srv.base, cr.tokens[2], client.Options{})
	require.Error(t, err, "a removed student must not rejoin")
	require.Equal(t, client.CloseForbidden, client.CloseCode(err), "rejoin: %v", err)
}

func (cr *classroom) speak(t *testing.T) {
	speaker := cr.class[3]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	early, err := client.NewPublisher(client.PublisherOptions{Ogg: clipOgg})
	require.NoError(t, err)
	_, err = speaker.Publish(ctx, client.LabelCamera, early.Tracks())
	require.ErrorIs(t, err, client.ErrForbidden, "publish before invitation")

	require.NoError(t, cr.teacher.Invite(speaker.ID()))
	require.Eventually(t, func() bool { return speaker.Me().CanPublish }, 10*time.Second, 20*time.Millisecond)
	voice, _ := publishClip(t, speaker, "", clipOgg)
	listeners := named(append([]*client.Client{cr.teacher}, cr.class[4:]...))
	audio := []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio}
	subs := findSubs(t, listeners, speaker.ID(), audio)
	measureDelivery(t, voice, subs, audio, 2*50) // 2 s of audio
}

// dialAll joins every token concurrently.
func dialAll(t *testing.T, srv *server, tokens []string) []*client.Client {
	t.Helper()
	out := make([]*client.Client, len(tokens))
	errs := make([]error, len(tokens))
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = client.Dial(ctx, srv.base, tok, client.Options{Logger: clientLogger(t)})
		}()
	}
	wg.Wait()
	for i, c := range out {
		if c != nil {
			t.Cleanup(func() { _ = c.Close() })
		}
		require.NoError(t, errs[i], "student %d", i)
	}
	return out
}

func named(cs []*client.Client) map[string]*client.Client {
	m := map[string]*client.Client{}
	for _, c := range cs {
		m[c.Me().Name+" "+c.ID()] = c
	}
	return m
}

// waitAll waits until cond holds for every client.
func waitAll(t *testing.T, cs []*client.Client, what string, cond func(*client.Client) bool) {
	t.Helper()
	waitFor(t, 15*time.Second, what, func() (bool, string) {
		var missing []string
		for _, c := range cs {
			if !cond(c) {
				missing = append(missing, c.Me().Name)
			}
		}
		return len(missing) == 0, fmt.Sprintf("not yet at %v", missing)
	})
}

// TestICETCPFallback: a student whose network only allows TCP receives
// the class over the server's ICE-TCP port (RFC 6544).
func TestICETCPFallback(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "tokens")
	room := newRoom()
	teacher := srv.dial(t, srv.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
	publishClip(t, teacher, clipIVF, clipOgg)
	api, err := client.NewAPI(client.APIOptions{TCPOnly: true})
	require.NoError(t, err)
	st := srv.dial(t, srv.token(t, room, auth.RoleStudent, "Tess"), client.Options{API: api})
	av := []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio}
	subs := findSubs(t, map[string]*client.Client{"tcp student": st}, teacher.ID(), av)
	waitFor(t, 30*time.Second, "a second of media over TCP", func() (bool, string) {
		v := subs["tcp student"].Video()
		return v.Packets >= 60, fmt.Sprintf("%d video packets", v.Packets)
	})
}
