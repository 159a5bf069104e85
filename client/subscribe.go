package client

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TrackStats counts what one received track delivered.
type TrackStats struct {
	Packets   uint64
	Bytes     uint64 // RTP payload bytes
	Keyframes uint64 // VP8 keyframes started (video only)
	// FirstPacket and FirstKeyframe are zero until they happen.
	FirstPacket   time.Time
	FirstKeyframe time.Time
	// LastSeq is the sequence number of the last packet received.
	LastSeq uint16
}

type trackCounters struct {
	packets, bytes, keyframes atomic.Uint64
	firstPacket, firstKey     atomic.Int64 // unix nanoseconds
	lastSeq                   atomic.Uint32
}

func (t *trackCounters) snapshot() TrackStats {
	s := TrackStats{
		Packets: t.packets.Load(), Bytes: t.bytes.Load(), Keyframes: t.keyframes.Load(),
		LastSeq: uint16(t.lastSeq.Load()),
	}
	if n := t.firstPacket.Load(); n != 0 {
		s.FirstPacket = time.Unix(0, n)
	}
	if n := t.firstKey.Load(); n != 0 {
		s.FirstKeyframe = time.Unix(0, n)
	}
	return s
}

// Subscription is one stream the server offered: a recvonly peer connection.
type Subscription struct {
	c       *Client
	offer   Offer
	pc      *webrtc.PeerConnection
	created time.Time
	trickle trickle
	audio   trackCounters
	video   trackCounters
	state   atomic.Int32 // webrtc.PeerConnectionState

	mu     sync.Mutex // guards closed and readers.Add
	closed bool
	// readers counts the track reader goroutines.
	readers sync.WaitGroup
	done    chan struct{}
}

// ID is the server's stream id.
func (s *Subscription) ID() string { return s.offer.Stream }

// Owner is the publishing participant's id.
func (s *Subscription) Owner() string { return s.offer.Owner }

// Label is camera or screen.
func (s *Subscription) Label() string { return s.offer.Label }

// Created is when the offer was received.
func (s *Subscription) Created() time.Time { return s.created }

// State is the peer connection's state.
func (s *Subscription) State() webrtc.PeerConnectionState {
	return webrtc.PeerConnectionState(s.state.Load())
}

// Done is closed when the subscription's peer connection is closed.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Stats returns the counters of the track of kind.
func (s *Subscription) Stats(kind webrtc.RTPCodecType) TrackStats {
	if kind == webrtc.RTPCodecTypeAudio {
		return s.audio.snapshot()
	}
	return s.video.snapshot()
}

// Video returns the video track's counters.
func (s *Subscription) Video() TrackStats { return s.video.snapshot() }

// Audio returns the audio track's counters.
func (s *Subscription) Audio() TrackStats { return s.audio.snapshot() }

// Subscriptions lists the streams being received, by stream id.
func (c *Client) Subscriptions() []*Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		out = append(out, s)
	}
	return out
}

// Subscription returns the subscription of a stream, nil if none.
func (c *Client) Subscription(stream string) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[stream]
}

// SubscriptionOf returns the subscription of owner's stream with label.
func (c *Client) SubscriptionOf(owner, label string) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.subs {
		if s.offer.Owner == owner && s.offer.Label == label {
			return s
		}
	}
	return nil
}

// subscribe answers a server offer with a new recvonly peer connection.
// The server never renegotiates, so an offer for a known stream replaces
// the old peer connection.
func (c *Client) subscribe(o *Offer) {
	s := &Subscription{c: c, offer: *o, created: time.Now(), done: make(chan struct{})}
	s.offer.SDP = ""
	if old := c.swapSub(s); old != nil {
		c.background(old.close)
	}
	if err := s.start(o.SDP); err != nil {
		c.log.Warn().Err(err).Str("stream", o.Stream).Msg("client: cannot answer offer")
		c.dropSub(s)
		c.background(s.close)
	}
}

func (s *Subscription) start(sdp string) error {
	c := s.c
	pc, err := c.api.NewPeerConnection(c.rtcConfig())
	if err != nil {
		return err
	}
	s.pc = pc
	s.trickle.send = func(ci *webrtc.ICECandidateInit) {
		_ = c.send(TypeICE, "", ICE{Stream: s.offer.Stream, Candidate: ci})
	}
	pc.OnICECandidate(s.trickle.onCandidate)
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) { s.state.Store(int32(st)) })
	pc.OnTrack(s.onTrack)
	offer := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}
	if err := pc.SetRemoteDescription(offer); err != nil {
		return err
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return err
	}
	if err := c.send(TypeAnswer, "", Answer{Stream: s.offer.Stream, SDP: answer.SDP}); err != nil {
		return err
	}
	// Candidates go after the answer: the server cannot use them before.
	s.trickle.flush()
	return nil
}

func (c *Client) swapSub(s *Subscription) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.subs[s.offer.Stream]
	c.subs[s.offer.Stream] = s
	return old
}

func (c *Client) dropSub(s *Subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs[s.offer.Stream] == s {
		delete(c.subs, s.offer.Stream)
	}
}

func (s *Subscription) onTrack(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.readers.Add(2)
	s.mu.Unlock()
	go func() {
		defer s.readers.Done()
		s.read(t)
	}()
	go func() {
		defer s.readers.Done()
		readRTCP(r)
	}()
}

// readRTCP reads the server's RTCP for a receiver until the peer
// connection closes. The packets themselves are not needed, but pion's
// interceptors see them only when they are read: the receiver report
// interceptor takes the sender reports' times from them, and without
// them its reports carry no LSR, so the server could not compute the
// round trip (RFC 3550 6.4.1), as it does for browsers.
func readRTCP(r *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := r.Read(buf); err != nil {
			return
		}
	}
}

// read is the track's reader goroutine; it ends when the peer connection
// closes. One buffer and one packet are reused for every read.
func (s *Subscription) read(t *webrtc.TrackRemote) {
	kind := t.Kind()
	ctr := &s.video
	if kind == webrtc.RTPCodecTypeAudio {
		ctr = &s.audio
	}
	vp8 := strings.EqualFold(t.Codec().MimeType, webrtc.MimeTypeVP8)
	buf := make([]byte, 1500)
	var p rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		now := time.Now().UnixNano()
		if ctr.packets.Add(1) == 1 {
			ctr.firstPacket.Store(now)
		}
		ctr.bytes.Add(uint64(len(p.Payload)))
		ctr.lastSeq.Store(uint32(p.SequenceNumber))
		if vp8 && IsVP8Keyframe(p.Payload) {
			if ctr.keyframes.Add(1) == 1 {
				ctr.firstKey.Store(now)
			}
		}
		if s.c.opts.OnPacket != nil {
			s.c.opts.OnPacket(s, kind, &p)
		}
	}
}

func (s *Subscription) onRemoteICE(ci *webrtc.ICECandidateInit) {
	if ci == nil || ci.Candidate == "" {
		return
	}
	if err := s.pc.AddICECandidate(*ci); err != nil {
		s.c.log.Warn().Err(err).Str("stream", s.offer.Stream).Msg("client: bad server candidate")
	}
}

// close closes the peer connection and waits for the track readers.
func (s *Subscription) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return
	}
	s.closed = true
	s.mu.Unlock()
	if s.pc != nil {
		_ = s.pc.GracefulClose()
	}
	s.readers.Wait()
	close(s.done)
}

func (c *Client) onStreamClosed(stream string) {
	c.mu.Lock()
	delete(c.state.streams, stream)
	s := c.subs[stream]
	delete(c.subs, stream)
	p := c.pubs[stream]
	delete(c.pubs, stream)
	c.mu.Unlock()
	if s != nil {
		c.background(s.close)
	}
	if p != nil {
		c.background(p.closePC)
	}
}

func (c *Client) onRemoteICE(m *ICE) {
	c.mu.Lock()
	s := c.subs[m.Stream]
	p := c.pubs[m.Stream]
	c.mu.Unlock()
	switch {
	case s != nil:
		s.onRemoteICE(m.Candidate)
	case p != nil:
		p.onRemoteICE(m.Candidate)
	}
}

// trickle holds a peer connection's local candidates until the message
// carrying its description has been queued, then sends them in order
// (RFC 8838 section 4: candidates follow their description).
type trickle struct {
	mu      sync.Mutex
	ready   bool
	pending []*webrtc.ICECandidateInit
	send    func(*webrtc.ICECandidateInit)
}

func (t *trickle) onCandidate(c *webrtc.ICECandidate) {
	var ci *webrtc.ICECandidateInit
	if c != nil {
		v := c.ToJSON()
		ci = &v
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ready {
		t.pending = append(t.pending, ci)
		return
	}
	t.send(ci)
}

func (t *trickle) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ready = true
	for _, ci := range t.pending {
		t.send(ci)
	}
	t.pending = nil
}

// IsVP8Keyframe reports whether a VP8 RTP payload starts a keyframe: the
// payload descriptor (RFC 7741 section 4.2) has S=1 and PID=0, and the
// payload header's P bit (RFC 7741 section 4.3, RFC 6386 section 9.1) is 0.
func IsVP8Keyframe(payload []byte) bool {
	if len(payload) < 1 {
		return false
	}
	b := payload[0]
	if b&0x10 == 0 || b&0x07 != 0 { // S bit, partition index
		return false
	}
	i := 1
	if b&0x80 != 0 { // X: extension byte follows
		if len(payload) < 2 {
			return false
		}
		x := payload[1]
		i = 2
		if x&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(payload) <= i {
				return false
			}
			if payload[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID/KEYIDX byte
			i++
		}
	}
	return len(payload) > i && payload[i]&0x01 == 0
}
