package signaling

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"lectern/auth"
)

// These tests run real pion peers over loopback against a real engine.

func clientAPI() *webrtc.API {
	me := &webrtc.MediaEngine{}
	_ = me.RegisterDefaultCodecs()
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(*clientSettings()))
}

// clientSettings keep a test client on IPv4 loopback over UDP.
func clientSettings() *webrtc.SettingEngine {
	se := &webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return se
}

// mediaPublisher publishes a stream over the protocol and sends packets
// on every track until the test ends.
type mediaPublisher struct {
	pc     *webrtc.PeerConnection
	tracks []*webrtc.TrackLocalStaticRTP
	stop   chan struct{}
	wg     sync.WaitGroup
}

func publishMedia(t *testing.T, c *wsClient, stream, label string, kinds ...string) *mediaPublisher {
	t.Helper()
	return publishFeeding(t, c, stream, label, len(kinds), kinds...)
}

// publishFeeding publishes tracks of kinds but sends packets only on the
// first feed of them.
func publishFeeding(t *testing.T, c *wsClient, stream, label string, feed int, kinds ...string) *mediaPublisher {
	t.Helper()
	pc, err := clientAPI().NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	mp := &mediaPublisher{pc: pc, stop: make(chan struct{})}
	t.Cleanup(func() {
		close(mp.stop)
		mp.wg.Wait()
		_ = pc.Close()
	})
	var tracks []*webrtc.TrackLocalStaticRTP
	for _, k := range kinds {
		mime := webrtc.MimeTypeVP8
		if k == "audio" {
			mime = webrtc.MimeTypeOpus
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: mime}, k, stream)
		require.NoError(t, err)
		_, err = pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		require.NoError(t, err)
		tracks = append(tracks, tr)
	}
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	gathered := webrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(offer))
	<-gathered
	rid := "pub-" + stream
	c.send(typePublish, rid, publishData{Stream: stream, Label: label, SDP: pc.LocalDescription().SDP})
	var ans answerData
	c.decode(c.wait("answer", func(m envelope) bool { return m.Type == typeAnswer && m.RID == rid }), &ans)
	require.Equal(t, stream, ans.Stream)
	require.NoError(t, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}))
	mp.tracks = tracks
	mp.wg.Add(1)
	go mp.send(tracks[:feed])
	return mp
}

// feedMore starts sending on the publisher's track i as well.
func (mp *mediaPublisher) feedMore(i int) {
	mp.wg.Add(1)
	go mp.send(mp.tracks[i : i+1])
}

func (mp *mediaPublisher) send(tracks []*webrtc.TrackLocalStaticRTP) {
	defer mp.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := uint32(0); ; i++ {
		select {
		case <-mp.stop:
			return
		case <-tick.C:
		}
		for _, tr := range tracks {
			payload := []byte{0xfc, byte(i)}
			if tr.Kind() == webrtc.RTPCodecTypeVideo { // a VP8 keyframe (RFC 7741), its first partition empty (RFC 6386 9.1)
				payload = []byte{0x10, 0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, byte(i)}
			}
			_ = tr.WriteRTP(&rtp.Packet{
				Header:  rtp.Header{Version: 2, Marker: true, SequenceNumber: uint16(i), Timestamp: i * 960},
				Payload: payload,
			})
		}
	}
}

// receiver answers the server's offers and counts the packets received.
type receiver struct {
	t       *testing.T
	c       *wsClient
	mu      sync.Mutex
	pcs     map[string]*webrtc.PeerConnection
	packets atomic.Int64
	audio   atomic.Int64 // audio packets among them
	wg      sync.WaitGroup
}

func newReceiver(t *testing.T, c *wsClient) *receiver {
	r := &receiver{t: t, c: c, pcs: map[string]*webrtc.PeerConnection{}}
	t.Cleanup(func() {
		r.mu.Lock()
		for _, pc := range r.pcs {
			_ = pc.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

// accept answers the offer for the stream id.
func (r *receiver) accept(stream string) offerData {
	r.t.Helper()
	return r.acceptNth(stream, 1)
}

// acceptNth answers the nth offer (from 1) for the stream id.
func (r *receiver) acceptNth(stream string, nth int) offerData {
	r.t.Helper()
	var o offerData
	var found envelope
	require.Eventually(r.t, func() bool {
		r.c.mu.Lock()
		defer r.c.mu.Unlock()
		n := 0
		for _, m := range r.c.msgs {
			if m.Type == typeOffer && strings.Contains(string(m.Data), `"stream":"`+stream+`"`) {
				if n++; n == nth {
					found = m
					return true
				}
			}
		}
		return false
	}, waitFor, 5*time.Millisecond, "waiting for offer %d of %s", nth, stream)
	r.c.decode(found, &o)
	pc, err := clientAPI().NewPeerConnection(webrtc.Configuration{})
	require.NoError(r.t, err)
	r.mu.Lock()
	r.pcs[stream] = pc
	r.mu.Unlock()
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		r.wg.Add(1)
		defer r.wg.Done()
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			r.packets.Add(1)
			if tr.Kind() == webrtc.RTPCodecTypeAudio {
				r.audio.Add(1)
			}
		}
	})
	require.NoError(r.t, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: o.SDP}))
	answer, err := pc.CreateAnswer(nil)
	require.NoError(r.t, err)
	gathered := webrtc.GatheringCompletePromise(pc)
	require.NoError(r.t, pc.SetLocalDescription(answer))
	<-gathered
	r.c.send(typeAnswer, "ans-"+stream, answerData{Stream: stream, SDP: pc.LocalDescription().SDP})
	return o
}

func TestTeacherBroadcast(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true})
	teacher, _ := env.join(env.token("live", auth.RoleTeacher, "t", "Tess"))
	student, _ := env.join(env.token("live", auth.RoleStudent, "s1", "Sam"))
	op, _ := env.join(env.token("live", auth.RoleOperator, "op", "Ops"))

	publishMedia(t, teacher, "cam", labelCamera, "video", "audio")
	var added streamInfo
	student.decode(student.waitType(typeStreamAdded), &added)
	require.Equal(t, streamInfo{Stream: "t:cam", Owner: "t", Label: labelCamera, Kinds: []string{"audio", "video"}}, added)
	var own streamInfo
	teacher.decode(teacher.waitType(typeStreamAdded), &own)
	require.Equal(t, "cam", own.Stream, "the publisher sees its own id")
	for _, c := range []*wsClient{teacher, student, op} {
		c.wait("live", func(m envelope) bool { return m.Type == typeLive && strings.Contains(string(m.Data), "true") })
	}

	rs := newReceiver(t, student)
	o := rs.accept("t:cam")
	require.Equal(t, offerData{Stream: "t:cam", Owner: "t", Label: labelCamera}, offerData{Stream: o.Stream, Owner: o.Owner, Label: o.Label})
	newReceiver(t, op).accept("t:cam")
	require.Eventually(t, func() bool { return rs.packets.Load() > 10 }, 10*time.Second, 10*time.Millisecond,
		"the student receives the teacher's media")
	require.Zero(t, teacher.count(typeOffer), "nobody is offered their own stream")

	// A latecomer gets the stream in its welcome, then an offer.
	late, w := env.join(env.token("live", auth.RoleStudent, "s2", "Sue"))
	require.True(t, w.Live)
	require.Len(t, w.Streams, 1)
	newReceiver(t, late).accept("t:cam")

	// A second camera is a conflict; unpublish ends the stream for everyone.
	teacher.send(typePublish, "again", publishData{Stream: "cam2", Label: labelCamera, SDP: "v=0"})
	require.Equal(t, "conflict", teacher.waitError("again").Code)
	teacher.send(typeUnpublish, "", streamRef{Stream: "cam"})
	for _, c := range []*wsClient{student, late, op} {
		c.wait("closed", func(m envelope) bool {
			return m.Type == typeStreamClosed && strings.Contains(string(m.Data), `"t:cam"`)
		})
		c.wait("not live", func(m envelope) bool { return m.Type == typeLive && strings.Contains(string(m.Data), "false") })
	}
	teacher.wait("own closed", func(m envelope) bool {
		return m.Type == typeStreamClosed && strings.Contains(string(m.Data), `"cam"`)
	})
	require.Eventually(t, func() bool {
		st := env.engine.Stats()
		return st.Publishers == 0 && st.Subscribers == 0
	}, waitFor, 10*time.Millisecond, "every peer closed")
}

func TestInvitedStudentPublishes(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, tm: func(tm *timings) { tm.ready = 200 * time.Millisecond }})
	teacher, _ := env.join(env.token("talk", auth.RoleTeacher, "t", "Tess"))
	student, _ := env.join(env.token("talk", auth.RoleStudent, "s1", "Sam"))
	teacher.send(typeInvite, "", participantRef{ID: "s1"})
	student.wait("invited", func(m envelope) bool {
		return m.Type == typeParticipantUpdated && strings.Contains(string(m.Data), `"can_publish":true`)
	})
	// Audio only: one track, announced when it arrives.
	publishMedia(t, student, "mic", labelCamera, "audio")
	var added streamInfo
	teacher.decode(teacher.waitType(typeStreamAdded), &added)
	require.Equal(t, []string{"audio"}, added.Kinds)
	require.Zero(t, teacher.count(typeLive), "a student's camera does not make the class live")
	newReceiver(t, teacher).accept("s1:mic")

	teacher.send(typeRevoke, "", participantRef{ID: "s1"})
	student.wait("own closed", func(m envelope) bool {
		return m.Type == typeStreamClosed && strings.Contains(string(m.Data), `"mic"`)
	})
	teacher.wait("closed", func(m envelope) bool {
		return m.Type == typeStreamClosed && strings.Contains(string(m.Data), `"s1:mic"`)
	})
}

func TestBadSDP(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true})
	teacher, _ := env.join(env.token("sdp", auth.RoleTeacher, "t", "Tess"))
	teacher.send(typePublish, "bad", publishData{Stream: "cam", Label: labelCamera, SDP: "this is not sdp"})
	e := teacher.waitError("bad")
	require.Equal(t, "bad_sdp", e.Code, e.Message)
	// The id is free again after the failure.
	teacher.send(typePublish, "bad2", publishData{Stream: "cam", Label: labelCamera, SDP: "v=0"})
	require.Equal(t, "bad_sdp", teacher.waitError("bad2").Code)
	require.Equal(t, 2, teacher.count(typeError))
}

func TestStreamReadyWithMissingTrack(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, tm: func(tm *timings) { tm.ready = 300 * time.Millisecond }})
	teacher, _ := env.join(env.token("part", auth.RoleTeacher, "t", "Tess"))
	student, _ := env.join(env.token("part", auth.RoleStudent, "s1", "Sam"))
	// Video and audio are offered, only audio ever arrives: the stream is
	// announced after the wait, with what it has.
	start := time.Now()
	publishFeeding(t, teacher, "cam", labelCamera, 1, "audio", "video")
	var added streamInfo
	student.decode(student.waitType(typeStreamAdded), &added)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	require.Equal(t, []string{"audio"}, added.Kinds)
	newReceiver(t, student).accept("t:cam")
}

// TestLateTrack: a publisher whose audio starts long after its video,
// after the stream was announced with video alone, is still heard: the
// class page gets a fresh offer with both tracks, and a WHEP viewer takes
// the audio too.
func TestLateTrack(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true, tm: func(tm *timings) { tm.ready = 300 * time.Millisecond }})
	teacher, _ := env.join(env.token("late", auth.RoleTeacher, "t", "Tess"))
	student, _ := env.join(env.token("late", auth.RoleStudent, "s1", "Sam"))
	view := env.startWHEP(t, "/whep/late", env.token("late", auth.RoleStudent, "s2", "Vic"))
	mp := publishFeeding(t, teacher, "cam", labelCamera, 1, "video", "audio")
	var added streamInfo
	student.decode(student.waitType(typeStreamAdded), &added)
	require.Equal(t, []string{"video"}, added.Kinds)
	rcv := newReceiver(t, student)
	first := rcv.accept("t:cam")
	require.NotContains(t, first.SDP, "m=audio")
	require.Eventually(t, func() bool { return rcv.packets.Load() > 0 }, waitFor, 10*time.Millisecond)
	view.waitMedia(10, kindVideo)

	time.Sleep(time.Second) // the audio starts well after the announcement
	mp.feedMore(1)
	second := rcv.acceptNth("t:cam", 2)
	require.Contains(t, second.SDP, "m=audio", "the new offer carries the late track")
	require.Eventually(t, func() bool { return rcv.audio.Load() >= 10 }, waitFor, 10*time.Millisecond,
		"the class page hears the late audio")
	view.waitMedia(10, kindAudio)
	require.Zero(t, countClosed(student, "t:cam"), "the stream was never closed for the student")
}

// TestResubscribe: a viewer whose receiving peer connection failed asks
// for the stream again and gets a fresh offer and media, at most once a
// second; a stream it cannot receive is refused.
func TestResubscribe(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envOpts{engine: true})
	teacher, _ := env.join(env.token("resub", auth.RoleTeacher, "t", "Tess"))
	student, _ := env.join(env.token("resub", auth.RoleStudent, "s1", "Sam"))
	publishMedia(t, teacher, "cam", labelCamera, "video", "audio")

	first := newReceiver(t, student)
	first.accept("t:cam")
	require.Eventually(t, func() bool { return first.packets.Load() > 10 }, 10*time.Second, 10*time.Millisecond)

	student.send(typeSubscribe, "too-soon", streamRef{Stream: "t:cam"})
	require.Equal(t, "conflict", student.waitError("too-soon").Code, "at most one fresh offer a second")
	student.send(typeSubscribe, "nothing", streamRef{Stream: "t:none"})
	require.Equal(t, "not_found", student.waitError("nothing").Code)
	teacher.send(typeSubscribe, "own", streamRef{Stream: "cam"})
	require.Equal(t, "not_found", teacher.waitError("own").Code, "nobody receives their own stream")

	// The student's side failed without the server noticing (a network
	// change): it asks again once the second has passed, and the server
	// replaces its peer connection without ending the stream.
	require.Eventually(t, func() bool {
		student.send(typeSubscribe, "", streamRef{Stream: "t:cam"})
		return student.count(typeOffer) >= 2
	}, 10*time.Second, 300*time.Millisecond)
	second := newReceiver(t, student)
	second.acceptNth("t:cam", 2)
	require.Eventually(t, func() bool { return second.packets.Load() > 10 }, 10*time.Second, 10*time.Millisecond,
		"media flows on the fresh peer connection")
	require.Zero(t, countClosed(student, "t:cam"), "a resubscription is not the end of the stream")
}

func countClosed(c *wsClient, stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if m.Type == typeStreamClosed && strings.Contains(string(m.Data), `"`+stream+`"`) {
			n++
		}
	}
	return n
}
