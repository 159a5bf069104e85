package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lectern/client"
)

// seenSlots is the size of a student's ring of recent video packet
// indices, used to tell a retransmission of a packet already received
// from a new one (about 13 s of video at 160 packets a second).
const seenSlots = 2048

// student is one viewer. Its counters are written by the reader
// goroutines of its tracks and read by the sampler, hence atomic; the
// seen ring and the audio sequence counter are guarded by mu.
type student struct {
	env *runEnv
	n   int

	joinAt      atomic.Int64 // run clock: when the join began
	joined      atomic.Bool
	err         atomic.Pointer[error]
	firstPacket atomic.Int64 // run clock; 0: none yet
	firstKey    atomic.Int64

	packets   atomic.Uint64 // video and audio
	bytes     atomic.Uint64 // RTP payload bytes, video and audio
	video     atomic.Uint64
	matched   atomic.Uint64 // video packets found in the send log, duplicates left out
	unmatched atomic.Uint64
	dups      atomic.Uint64
	minIdx    atomic.Uint64
	maxIdx    atomic.Uint64

	mu       sync.Mutex
	seen     [seenSlots]uint32
	audioSeq seqCounter

	leave func(ctx context.Context) error
}

func (s *student) setErr(err error) { s.err.Store(&err) }

// Err is why the student failed to join or dropped out, nil if it did not.
func (s *student) Err() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// markFirst records the first packet's arrival and returns it.
func (s *student) markFirst(now int64) int64 {
	if t := s.firstPacket.Load(); t != 0 {
		return t
	}
	if s.firstPacket.CompareAndSwap(0, now) {
		return now
	}
	return s.firstPacket.Load()
}

// onPacket accounts one received RTP packet; called from the reader
// goroutine of the packet's track, p valid only during the call.
func (s *student) onPacket(kind webrtc.RTPCodecType, p *rtp.Packet, now int64) {
	first := s.markFirst(now)
	s.packets.Add(1)
	s.bytes.Add(uint64(len(p.Payload)))
	if kind == webrtc.RTPCodecTypeAudio {
		s.mu.Lock()
		s.audioSeq.add(p.SequenceNumber)
		s.mu.Unlock()
		return
	}
	s.video.Add(1)
	if s.firstKey.Load() == 0 && client.IsVP8Keyframe(p.Payload) {
		s.firstKey.CompareAndSwap(0, now)
	}
	s.onVideo(p.Payload, now, first)
}

// onVideo matches a video packet with the publisher's record of it.
// Packets sent before the student's first packet arrived are the cached
// group of pictures the server primes a new viewer with: they count for
// loss, but their age is not forwarding latency.
func (s *student) onVideo(payload []byte, now, first int64) {
	rec, ok := s.env.sends.get(s.env.sends.hash(payload))
	if !ok {
		s.unmatched.Add(1)
		return
	}
	s.mu.Lock()
	slot := &s.seen[rec.idx%seenSlots]
	dup := *slot == uint32(rec.idx)
	*slot = uint32(rec.idx)
	s.mu.Unlock()
	if dup {
		s.dups.Add(1)
		return
	}
	if s.matched.Add(1) == 1 {
		s.minIdx.Store(rec.idx)
		s.maxIdx.Store(rec.idx)
	} else {
		if rec.idx < s.minIdx.Load() {
			s.minIdx.Store(rec.idx)
		}
		if rec.idx > s.maxIdx.Load() {
			s.maxIdx.Store(rec.idx)
		}
	}
	if rec.at >= first && now >= rec.at {
		s.env.latency.record(uint64(now-rec.at) / 1000)
	}
}

// videoLoss returns the video packets expected (from the first to the
// last index received) and those missing.
func (s *student) videoLoss() (expected, lost uint64) {
	m := s.matched.Load()
	if m == 0 {
		return 0, 0
	}
	expected = s.maxIdx.Load() - s.minIdx.Load() + 1
	if m >= expected {
		return expected, 0
	}
	return expected, expected - m
}

func (s *student) audioLoss() (expected, lost uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	expected = s.audioSeq.expected()
	if s.audioSeq.received >= expected {
		return expected, 0
	}
	return expected, expected - s.audioSeq.received
}

// join connects the student with the run's transport.
func (s *student) join(ctx context.Context) error {
	token, err := s.env.tokens.student(s.n)
	if err != nil {
		return err
	}
	if s.env.opts.Transport == TransportWS {
		return s.joinWS(ctx, token)
	}
	return s.joinWHEP(ctx, token)
}

// joinWHEP subscribes through POST /whep/{room} with a recvonly peer
// connection for the teacher's video and audio.
func (s *student) joinWHEP(ctx context.Context, token string) error {
	pc, err := s.env.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return fmt.Errorf("bench: peer connection: %w", err)
	}
	r := &readers{}
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { r.start(func() { s.read(t) }) })
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		_, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		if err != nil {
			_ = pc.Close()
			return fmt.Errorf("bench: transceiver: %w", err)
		}
	}
	sess, err := negotiate(ctx, s.env.hc, endpointURL(s.env.base, "whep", s.env.opts.Room), token, pc)
	if err != nil {
		_ = pc.Close()
		r.stop()
		return err
	}
	s.leave = func(ctx context.Context) error {
		err := sess.end(ctx)
		err = errors.Join(err, pc.Close())
		r.stop()
		return err
	}
	return nil
}

// read is a track's reader goroutine; it ends when the peer connection
// closes. One buffer and one packet are reused for every read.
func (s *student) read(t *webrtc.TrackRemote) {
	kind := t.Kind()
	buf := make([]byte, 1500)
	var p rtp.Packet
	for range 1 << 40 {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		s.onPacket(kind, &p, s.env.clock.now())
	}
}

// joinWS joins the class over the classroom protocol; the server offers
// the teacher's camera stream on its own.
func (s *student) joinWS(ctx context.Context, token string) error {
	c, err := client.Dial(ctx, s.env.base, token, client.Options{
		Logger: s.env.log, API: s.env.api,
		OnPacket: func(_ *client.Subscription, kind webrtc.RTPCodecType, p *rtp.Packet) {
			s.onPacket(kind, p, s.env.clock.now())
		},
	})
	if err != nil {
		return err
	}
	s.leave = func(context.Context) error { return c.Close() }
	return nil
}

// readers tracks a peer connection's track reader goroutines, which pion
// starts from its own callbacks, possibly while the student is leaving.
type readers struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (r *readers) start(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

// stop waits for the readers; call it after closing the peer connection.
func (r *readers) stop() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
}
