package sfu

// Lock order: Subscriber.mu guards closed and attached; while holding it
// the subscriber calls Track.AddSink (taking Track.mu). Track never calls
// back into a Subscriber, so Subscriber.mu -> Track.mu is the only order.

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// SubscriberConfig carries a subscriber's callbacks.
type SubscriberConfig struct {
	Logger zerolog.Logger
	// OnICECandidate gets candidates found after the offer was returned
	// (the offer already carries the others; in practice there are none).
	OnICECandidate func(webrtc.ICECandidateInit)
	// OnClose is called once when the peer connection fails or is closed
	// by the remote side. It is not called when the owner calls Close.
	OnClose func()
	// OnPath is called when the connection is up, with the path it took.
	OnPath func(Path)
}

// Subscriber is an outgoing one-way peer connection: the server offers one
// sendonly section per track, the client answers.
type Subscriber struct {
	e         *Engine
	pc        *webrtc.PeerConnection
	out       *directOut
	cfg       SubscriberConfig
	log       zerolog.Logger
	downs     []*DownTrack
	gate      *candidateGate
	path      pathSlot
	described atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	attached bool
	reading  bool         // the down tracks' RTCP readers run
	ownShard *writerShard // the down tracks' own writer over ICE-TCP
}

// NewSubscriber builds the peer connection and returns the server's offer.
func (e *Engine) NewSubscriber(tracks []*Track, cfg SubscriberConfig) (*Subscriber, webrtc.SessionDescription, error) {
	var none webrtc.SessionDescription
	if len(tracks) == 0 {
		return nil, none, ErrNoTracks
	}
	if e.isClosed() {
		return nil, none, ErrClosed
	}
	out := newDirectOut(e.udpConn, &e.taps, &e.stats, cfg.Logger)
	pc, err := e.newOutPeerConnection(out, false)
	if err != nil {
		return nil, none, fmt.Errorf("sfu: new peer connection: %w", err)
	}
	s := &Subscriber{e: e, pc: pc, out: out, cfg: cfg, log: cfg.Logger, gate: e.newGate(), path: pathSlot{e: e}}
	out.needReaders = s.startReaders
	out.lost = func() { go s.close(true) }
	if err := e.register(s); err != nil {
		_ = pc.Close()
		return nil, none, err
	}
	e.stats.subscribers.Add(1)
	pc.OnConnectionStateChange(s.onState)
	pc.OnICECandidate(s.onCandidate)
	offer, err := s.offer(tracks)
	if err != nil {
		_ = s.Close()
		return nil, none, err
	}
	s.described.Store(true)
	return s, offer, nil
}

// offer adds one sendonly transceiver per track, restricted to the
// track's codec, and returns the complete offer.
func (s *Subscriber) offer(tracks []*Track) (webrtc.SessionDescription, error) {
	var none webrtc.SessionDescription
	for _, t := range tracks {
		if err := s.addDownTrack(t); err != nil {
			return none, err
		}
	}
	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		return none, fmt.Errorf("sfu: create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(offer); err != nil {
		return none, fmt.Errorf("sfu: set local description: %w", err)
	}
	if err := waitGathering(gathered); err != nil {
		return none, err
	}
	return *s.pc.LocalDescription(), nil
}

func (s *Subscriber) addDownTrack(t *Track) error {
	codecs := s.e.offerCodecs(t.codec, t.kind)
	if len(codecs) == 0 {
		return fmt.Errorf("%w: %s", ErrUnsupportedCodec, t.codec.MimeType)
	}
	d := newDownTrack(t, &s.e.stats, s.log)
	d.direct = s.out
	tr, err := s.pc.AddTransceiverFromTrack(d, webrtc.RTPTransceiverInit{
		Direction: webrtc.RTPTransceiverDirectionSendonly,
	})
	if err != nil {
		return fmt.Errorf("sfu: add transceiver: %w", err)
	}
	// Offer only what carries the published codec (offerCodecs): the
	// SFU cannot transcode, so any other codec would be undecodable.
	if err := tr.SetCodecPreferences(codecs); err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupportedCodec, err)
	}
	s.downs = append(s.downs, d)
	d.sender = tr.Sender()
	s.out.downs = s.downs
	return nil
}

// startReaders reads the down tracks' RTCP through pion, for as long as
// it does not come the direct way (direct.go).
func (s *Subscriber) startReaders() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startReadersLocked()
}

func (s *Subscriber) startReadersLocked() {
	if s.closed || s.reading {
		return
	}
	s.reading = true
	startRTCPReaders(&s.wg, s.downs)
}

// DownTracks returns the subscriber's down tracks, one per forwarded track.
func (s *Subscriber) DownTracks() []*DownTrack { return append([]*DownTrack(nil), s.downs...) }

// SetAnswer applies the client's answer.
func (s *Subscriber) SetAnswer(answer webrtc.SessionDescription) error {
	if answer.Type != webrtc.SDPTypeAnswer {
		return fmt.Errorf("%w: expected an answer, got %s", ErrBadSDP, answer.Type)
	}
	answer.SDP = s.gate.filterSDP(answer.SDP)
	if err := s.pc.SetRemoteDescription(answer); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	return nil
}

// AddICECandidate adds a remote (trickled) candidate.
func (s *Subscriber) AddICECandidate(c webrtc.ICECandidateInit) error {
	if !s.gate.admitInit(c) {
		return nil // dropped: see candidateGate
	}
	if err := s.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCandidate, err)
	}
	return nil
}

// onState attaches the down tracks once media can flow (before, SRTP is
// not ready and pion would discard the primed keyframe), and closes the
// subscriber when the connection fails or closes.
func (s *Subscriber) onState(st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		s.attach()
		s.path.report(s.pc, s.cfg.OnPath)
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		s.close(true)
	}
}

func (s *Subscriber) attach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.attached {
		return
	}
	s.attached = true
	if !s.out.start() {
		s.startReadersLocked()
	}
	sh, own := s.e.shardFor(s.pc)
	if own {
		s.ownShard = sh
	}
	for _, d := range s.downs {
		if own {
			d.growQueue()
		}
		d.setShard(sh)
		d.track.AddSink(d)
	}
}

func (s *Subscriber) onCandidate(c *webrtc.ICECandidate) {
	if c == nil || s.cfg.OnICECandidate == nil || !s.described.Load() {
		return
	}
	s.cfg.OnICECandidate(c.ToJSON())
}

// Close tears the peer connection down and detaches its down tracks.
func (s *Subscriber) Close() error { return s.close(false) }

func (s *Subscriber) close(remote bool) error {
	first := false
	s.closeOnce.Do(func() { first = true })
	if !first {
		return nil
	}
	s.out.close()
	s.path.release()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for _, d := range s.downs {
		d.track.RemoveSink(d)
		d.stop()
	}
	err := s.pc.Close() // stops the senders: the RTCP readers return
	s.wg.Wait()
	if s.ownShard != nil {
		s.ownShard.stop() // it releases the down tracks' queues first
	}
	for _, d := range s.downs {
		d.drain()
	}
	s.e.forget(s)
	s.e.stats.subscribers.Add(-1)
	if remote && s.cfg.OnClose != nil {
		s.cfg.OnClose()
	}
	return err
}
