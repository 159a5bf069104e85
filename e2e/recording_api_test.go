package e2e

import (
	"context"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

// TestRecordingPionTeacher records 10 s of a pion teacher through the
// API: the file has the video and the audio, its duration is the time
// recorded, the student saw the indicator go on and off, and the file
// decodes without an error.
func TestRecordingPionTeacher(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "tokens")
	room := newRoom()
	teacherTok := srv.token(t, room, auth.RoleTeacher, "Ms Rivera")
	teacher := srv.dial(t, teacherTok, client.Options{})
	var events recordingEvents
	srv.dial(t, srv.token(t, room, auth.RoleStudent, "Ada"), client.Options{OnEvent: events.on, NoSubscribe: true})
	publishClip(t, teacher, clipIVF, clipOgg)

	rec, stopAt := recordSeconds(t, srv, room, teacherTok, 10*time.Second)
	require.True(t, rec.Complete)
	require.Equal(t, "Ms Rivera", rec.Teacher)
	waitFor(t, 10*time.Second, "the student sees the indicator go on and off", func() (bool, string) {
		return events.seen(true, rec.ID) && events.seen(false, rec.ID), "no recording messages yet"
	})

	op := operatorToken(t, srv.signer)
	var list struct {
		Recordings []recEntry `json:"recordings"`
	}
	apiCall(t, http.MethodGet, srv.base+"/api/recordings", op, http.StatusOK, &list)
	require.Len(t, list.Recordings, 1)
	require.Equal(t, rec.ID, list.Recordings[0].ID)

	path := download(t, srv.base, rec.ID, op)
	kinds, dur := ffprobe(t, path)
	require.Equal(t, "vp8", kinds["video"])
	require.Equal(t, "opus", kinds["audio"])
	// The file starts at the first key frame after the start request; its
	// media must span from then to the stop.
	real := stopAt.Sub(rec.Start).Seconds()
	t.Logf("recorded %.3f s of media for %.3f s of class (catalog %.3f s)", dur, real, rec.Duration)
	require.InDelta(t, real, dur, 0.5)
	require.Greater(t, dur, 8.5)
	require.Empty(t, ffmpegDecode(t, path))
}

// TestRecordingLossAndReordering drops about 3% of the teacher's packets
// and swaps about 3% with their successor: the recording keeps its true
// duration and decodes without an error.
func TestRecordingLossAndReordering(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "tokens")
	room := newRoom()
	teacherTok := srv.token(t, room, auth.RoleTeacher, "Mr Lossy")
	teacher := srv.dial(t, teacherTok, client.Options{})
	media, err := client.NewPublisher(client.PublisherOptions{IVF: clipIVF, Ogg: clipOgg})
	require.NoError(t, err)
	var tracks []webrtc.TrackLocal
	for _, tr := range media.Tracks() {
		tracks = append(tracks, lossyTrack{TrackLocal: tr, lossPct: 3, swapPct: 3})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub, err := teacher.Publish(ctx, client.LabelCamera, tracks)
	require.NoError(t, err)
	require.NoError(t, pub.WaitConnected(ctx))
	media.Start()
	t.Cleanup(media.Stop)

	rec, stopAt := recordSeconds(t, srv, room, teacherTok, 10*time.Second)
	path := download(t, srv.base, rec.ID, operatorToken(t, srv.signer))
	kinds, dur := ffprobe(t, path)
	require.Contains(t, kinds, "video")
	require.Contains(t, kinds, "audio")
	real := stopAt.Sub(rec.Start).Seconds()
	t.Logf("with loss: %.3f s of media for %.3f s of class", dur, real)
	require.InDelta(t, real, dur, 0.5)
	require.False(t, math.IsNaN(dur))
	require.Empty(t, ffmpegDecode(t, path))
}
