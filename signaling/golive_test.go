package signaling

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"

	"lectern/auth"
)

// goLiveGOP is the keyframe interval of the go-live publisher: two seconds,
// as many encoders and files send, at 50 frames per second.
const goLiveGOP = 100

// sendGOPs streams VP8 from a publisher that never answers keyframe
// requests (a file, GStreamer, many hardware encoders): a keyframe every
// goLiveGOP frames, one 20 ms frame of three packets at a time. It
// returns once stop is closed.
func sendGOPs(p *whipPub, stop <-chan struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	seq := uint16(0)
	for frame := uint32(0); ; frame++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		key := frame%goLiveGOP == 0
		for i := 0; i < 3; i++ {
			// RFC 7741: S=1 on the frame's first packet; the VP8 payload
			// header's P bit is 0 on a keyframe.
			desc := byte(0x00)
			if i == 0 {
				desc = 0x10
			}
			hdr := byte(0x01)
			if key {
				hdr = 0x00
			}
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: i == 2, SequenceNumber: seq, Timestamp: frame * 1800},
				Payload: []byte{desc, hdr, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, byte(frame)}}
			seq++
			_ = p.video.WriteRTP(pkt)
		}
	}
}

// TestJoinDuringFirstKeyframeInterval: students who join while the class
// is in its first keyframe interval, from a publisher that never answers
// keyframe requests, start on the keyframe the class went live with,
// primed from the cached group of pictures, instead of waiting for the
// publisher's next keyframe two seconds later.
func TestJoinDuringFirstKeyframeInterval(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true})
	pub := env.startWHIP(t, "golive", env.token("golive", auth.RoleTeacher, "t", "Tess"), whipOpts{noAudio: true})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sendGOPs(pub, stop) }()
	t.Cleanup(func() { close(stop); wg.Wait() })
	live := time.Now()

	const students = 12
	views := make([]*whepView, students)
	joined := make([]time.Time, students)
	var jw sync.WaitGroup
	for i := range views {
		// 50 joins a second from 100 ms after go-live: all inside the
		// first two-second GOP.
		time.Sleep(time.Until(live.Add(100*time.Millisecond + time.Duration(i)*20*time.Millisecond)))
		jw.Add(1)
		go func() {
			defer jw.Done()
			joined[i] = time.Now()
			v, res := env.newWHEP(t, "/whep/golive", env.token("golive", auth.RoleStudent, "s"+string(rune('a'+i)), "S"), nil, false)
			require.Equal(t, 201, res.status, res.body)
			views[i] = v
		}()
	}
	jw.Wait()
	for i, v := range views {
		var first rtp.Packet
		require.Eventually(t, func() bool {
			got := v.packets(kindVideo)
			if len(got) == 0 {
				return false
			}
			first = got[0]
			return true
		}, 10*time.Second, 5*time.Millisecond, "student %d gets video", i)
		require.Equal(t, byte(0), first.Payload[11],
			"student %d, joined %v after go-live, starts on the go-live keyframe, not the next one", i, joined[i].Sub(live))
		require.Equal(t, byte(0x00), first.Payload[1]&0x01, "student %d starts on a keyframe", i)
	}
}

// TestWHEPBeforeTheStreamIsComplete: the teacher's video flows while its
// audio has not started yet (the stream is announced to class pages only
// once every track came, or after timings.ready). A WHEP student does not
// wait for that: it gets the video as soon as it flows, primed from the
// cached keyframe, and the audio when it starts.
func TestWHEPBeforeTheStreamIsComplete(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, tm: func(tm *timings) { tm.ready = time.Minute }})
	pub := env.startWHIP(t, "partial", env.token("partial", auth.RoleTeacher, "t", "Tess"), whipOpts{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sendGOPs(pub, stop) }()
	t.Cleanup(func() { close(stop); wg.Wait() })
	time.Sleep(300 * time.Millisecond) // the video has been live for a moment: inside its first GOP

	v := env.startWHEP(t, "/whep/partial", env.token("partial", auth.RoleStudent, "s", "Sam"))
	v.waitMedia(20, kindVideo)
	first := v.packets(kindVideo)[0]
	require.Equal(t, byte(0), first.Payload[11], "the student starts on the go-live keyframe")
	require.Empty(t, v.packets(kindAudio))

	pub.send() // the audio starts (with more video)
	v.waitMedia(10, kindAudio)
}
