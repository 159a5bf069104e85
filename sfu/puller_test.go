package sfu

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

// countingSink counts the packets a track delivers.
type countingSink struct{ n atomic.Int64 }

func (s *countingSink) Deliver(*Packet) { s.n.Add(1) }

// pullInto has edge pull tracks from origin through a puller and a
// viewer, as two nodes relay a class, and returns the sink counting what
// reaches the edge's copy of the video track.
func pullInto(t *testing.T, origin, edge *Engine, video, audio *Track) *countingSink {
	t.Helper()
	tracks := make(chan *Track, 2)
	p, offer, err := edge.NewPuller(PublisherConfig{OnTrack: func(tr *Track) { tracks <- tr }})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	v, answer, err := origin.NewViewer(offer, ViewerConfig{StreamID: "relay"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	require.NoError(t, v.SetSource(webrtc.RTPCodecTypeVideo, video))
	require.NoError(t, v.SetSource(webrtc.RTPCodecTypeAudio, audio))
	require.NoError(t, p.SetAnswer(answer))
	sink := &countingSink{}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case tr := <-tracks:
				if tr.Kind() == webrtc.RTPCodecTypeVideo {
					tr.AddSink(sink)
				}
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() { close(done) })
	return sink
}

// TestTwoPullersBetweenTwoEngines: one node relays two streams of a class
// (a teacher's camera and screen) from the same other node. Each puller
// is its own peer connection between the same two engines; both must
// connect and both must carry media. With both ends on their shared UDP
// ports the two connections would have the same addresses on the wire,
// and the origin's mux would hand one's packets to the other.
func TestTwoPullersBetweenTwoEngines(t *testing.T) {
	t.Parallel()
	origin, edge := newTestEngine(t), newTestEngine(t)
	cam, screen := startPublisher(t, origin, 10, true), startPublisher(t, origin, 10, true)
	camV, camA := cam.waitTracks()
	scrV, scrA := screen.waitTracks()
	defer cam.stream(10 * time.Millisecond)()
	defer screen.stream(10 * time.Millisecond)()

	first := pullInto(t, origin, edge, camV, camA)
	second := pullInto(t, origin, edge, scrV, scrA)
	require.Eventually(t, func() bool {
		return first.n.Load() > 50 && second.n.Load() > 50
	}, waitFor, tick, "both relays carry video")
}
