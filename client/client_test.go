package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"lectern/internal/mediafile"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClass is a minimal classroom server, enough to exercise the
// client's connection handling: it welcomes, echoes chat, refuses every
// publish, closes bad tokens with 4001 and answers leave with 1000.
type fakeClass struct {
	wg sync.WaitGroup
}

func (f *fakeClass) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	f.wg.Add(1)
	defer f.wg.Done()
	defer conn.Close()
	var join struct {
		Type string
		Data struct{ Token string }
	}
	if conn.ReadJSON(&join) != nil || join.Type != TypeJoin || join.Data.Token != "good" {
		closeWith(conn, CloseUnauthorized, "bad token")
		return
	}
	me := Participant{ID: "p1", Name: "Ada", Role: "student"}
	writeMsg(conn, TypeWelcome, "", Welcome{Room: "r1", You: me, Participants: []Participant{me}})
	for {
		var env envelope
		if conn.ReadJSON(&env) != nil {
			return
		}
		switch env.Type {
		case TypeChat:
			var d chatData
			_ = json.Unmarshal(env.Data, &d)
			writeMsg(conn, TypeChat, "", Chat{ID: me.ID, Name: me.Name, Text: d.Text, TS: 1})
		case TypePublish:
			writeMsg(conn, TypeError, env.RID, ServerError{Code: "forbidden", Message: "not invited"})
		case TypeLeave:
			closeWith(conn, CloseNormal, "bye")
			return
		default:
			writeMsg(conn, TypeError, env.RID, ServerError{Code: "unknown_type", Message: env.Type})
		}
	}
}

func writeMsg(conn *websocket.Conn, typ, rid string, data any) {
	b, _ := json.Marshal(data)
	_ = conn.WriteJSON(envelope{Type: typ, RID: rid, Data: b})
}

func closeWith(conn *websocket.Conn, code int, text string) {
	msg := websocket.FormatCloseMessage(code, text)
	_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
}

func startFake(t *testing.T) string {
	f := &fakeClass{}
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		srv.Close()
		f.wg.Wait()
	})
	return srv.URL
}

func TestDialWelcomeChatAndLeave(t *testing.T) {
	t.Parallel()
	base := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, base, "good", Options{})
	require.NoError(t, err)
	require.Equal(t, "r1", c.Welcome().Room)
	require.Equal(t, "p1", c.ID())
	require.Len(t, c.Participants(), 1)

	require.NoError(t, c.Chat("hello"))
	require.Eventually(t, func() bool { return c.HasChat("hello") }, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, c.Send("bogus", "bogus-1", nil))
	require.Eventually(t, func() bool { return len(c.ErrorsFor("bogus")) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.True(t, errors.Is(c.ErrorsFor("bogus")[0].Err, ErrUnknownType))

	require.NoError(t, c.Close())
	require.Equal(t, CloseNormal, c.CloseCode())
	require.ErrorIs(t, c.Chat("after close"), ErrClosed)
	// Events were delivered in order and the channel is closed.
	var types []string
	for ev := range c.Events() {
		types = append(types, ev.Type)
	}
	require.Equal(t, []string{TypeWelcome, TypeChat, TypeError}, types)
}

func TestDialRefused(t *testing.T) {
	t.Parallel()
	base := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Dial(ctx, base, "bad", Options{})
	require.Error(t, err)
	require.Equal(t, CloseUnauthorized, CloseCode(err))
	require.ErrorIs(t, err, ErrClosed)
}

func TestPublishRefused(t *testing.T) {
	t.Parallel()
	base := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, base, "good", Options{})
	require.NoError(t, err)
	defer c.Close()
	pub, err := NewPublisher(PublisherOptions{Ogg: "../testdata/clip.ogg"})
	require.NoError(t, err)
	_, err = c.Publish(ctx, LabelCamera, pub.Tracks())
	require.ErrorIs(t, err, ErrForbidden)
	var se *ServerError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "forbidden", se.Code)
	require.Empty(t, c.Publications())

	_, err = c.Publish(ctx, "webcam", pub.Tracks())
	require.ErrorIs(t, err, ErrBadLabel)
	_, err = c.Publish(ctx, LabelCamera, nil)
	require.ErrorIs(t, err, ErrNoTracks)
}

func TestAbortWithoutLeave(t *testing.T) {
	t.Parallel()
	base := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, base, "good", Options{})
	require.NoError(t, err)
	c.Abort()
	require.ErrorIs(t, c.Err(), ErrClosed)
	require.Zero(t, c.CloseCode())
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Abort")
	}
}

func TestWSURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "http://127.0.0.1:8080", want: "ws://127.0.0.1:8080/ws"},
		{in: "http://127.0.0.1:8080/", want: "ws://127.0.0.1:8080/ws"},
		{in: "https://class.example/lectern", want: "wss://class.example/lectern/ws"},
		{in: "ftp://x", bad: true},
		{in: "://", bad: true},
	}
	for _, tc := range tests {
		got, err := wsURL(tc.in)
		if tc.bad {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got)
	}
}

func TestFragmentToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "/room/R#token=abc.def.ghi", want: "abc.def.ghi"},
		{in: "http://127.0.0.1:1/room/R#token=x&y=1", want: "x"},
		{in: "/room/R", bad: true},
		{in: "/room/R#tok=1", bad: true},
	}
	for _, tc := range tests {
		got, err := fragmentToken(tc.in)
		if tc.bad {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got)
	}
}

func TestServerErrorIs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code string
		want error
	}{
		{"bad_request", ErrBadRequest},
		{"rate_limited", ErrRateLimited},
		{"unknown_type", ErrUnknownType},
		{"forbidden", ErrForbidden},
		{"not_found", ErrNotFound},
		{"bad_sdp", ErrBadSDP},
		{"conflict", ErrConflict},
		{"internal", ErrInternal},
	}
	for _, tc := range tests {
		err := error(&ServerError{Code: tc.code})
		require.ErrorIs(t, err, tc.want)
		require.NotErrorIs(t, err, ErrClosed)
	}
	require.NotErrorIs(t, &ServerError{Code: "new_code"}, ErrForbidden)
}

func TestDecodeEventTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ, data string
		check     func(t *testing.T, d any)
	}{
		{TypeOffer, `{"stream":"s","owner":"o","label":"camera","sdp":"v=0"}`, func(t *testing.T, d any) {
			require.Equal(t, &Offer{Stream: "s", Owner: "o", Label: "camera", SDP: "v=0"}, d)
		}},
		{TypeICE, `{"stream":"s","candidate":null}`, func(t *testing.T, d any) {
			require.Nil(t, d.(*ICE).Candidate)
		}},
		{TypeLive, `{"live":true}`, func(t *testing.T, d any) { require.True(t, d.(*Live).Live) }},
		{TypeParticipantLeft, `{"id":"p"}`, func(t *testing.T, d any) { require.Equal(t, "p", d.(*ParticipantRef).ID) }},
		{TypeRemoved, `{"reason":"bye"}`, func(t *testing.T, d any) { require.Equal(t, "bye", d.(*Reason).Reason) }},
		{"future_type", `{"x":1}`, func(t *testing.T, d any) { require.JSONEq(t, `{"x":1}`, string(d.(json.RawMessage))) }},
	}
	for _, tc := range tests {
		ev, err := decodeEvent(envelope{Type: tc.typ, Data: json.RawMessage(tc.data)})
		require.NoError(t, err, tc.typ)
		tc.check(t, ev.Data)
	}
	_, err := decodeEvent(envelope{Type: TypeChat, Data: json.RawMessage(`{"text":5}`)})
	require.Error(t, err)
}

func TestIsVP8Keyframe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"empty", nil, false},
		{"start, no extension, key", []byte{0x10, 0x00}, true},
		{"start, no extension, delta", []byte{0x10, 0x01}, false},
		{"not a start", []byte{0x00, 0x00}, false},
		{"start of partition 1", []byte{0x11, 0x00}, false},
		{"7-bit picture id, key", []byte{0x90, 0x80, 0x05, 0x00}, true},
		{"15-bit picture id, key", []byte{0x90, 0x80, 0x81, 0x05, 0x00}, true},
		{"15-bit picture id, delta", []byte{0x90, 0x80, 0x81, 0x05, 0x01}, false},
		{"picture id, tl0picidx, tid", []byte{0x90, 0xE0, 0x05, 0x07, 0x40, 0x00}, true},
		{"truncated extension", []byte{0x90}, false},
		{"truncated picture id", []byte{0x90, 0x80}, false},
		{"truncated after descriptor", []byte{0x90, 0x80, 0x81, 0x05}, false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, IsVP8Keyframe(tc.payload), tc.name)
	}
}

func TestLoadTestdata(t *testing.T) {
	t.Parallel()
	video, err := mediafile.LoadIVF("../testdata/clip.ivf")
	require.NoError(t, err)
	require.Len(t, video.Frames, 180, "6 s at 30 fps")
	for i, f := range video.Frames {
		// A raw VP8 frame's first bit is the inverse keyframe flag (RFC 6386 section 9.1).
		require.Equal(t, i%30 == 0, f.Data[0]&0x01 == 0, "frame %d keyframe flag", i)
		require.Equal(t, i%30 == 0, f.Key, "frame %d Key", i)
		require.InDelta(t, float64(time.Second/30), float64(f.Dur), float64(time.Millisecond))
	}
	audio, err := mediafile.LoadOgg("../testdata/clip.ogg")
	require.NoError(t, err)
	require.InDelta(t, 300, len(audio), 3, "6 s of 20 ms packets")
	for _, f := range audio[:len(audio)-1] { // the last one ends the clip early
		require.Equal(t, 20*time.Millisecond, f.Dur)
	}
	_, err = NewPublisher(PublisherOptions{IVF: "../testdata/missing.ivf"})
	require.ErrorIs(t, err, ErrMedia)
	_, err = NewPublisher(PublisherOptions{IVF: "../testdata/clip.ogg"})
	require.ErrorIs(t, err, ErrMedia)
	_, err = NewPublisher(PublisherOptions{})
	require.ErrorIs(t, err, ErrMedia)
}

var _ webrtc.TrackLocal = (*countingTrack)(nil)
