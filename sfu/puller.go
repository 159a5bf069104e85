package sfu

// A puller is a Publisher whose peer connection the server offers: one
// node pulls a class's stream from the node where the teacher publishes
// (the relay of docs/scaling.md). Its remote tracks become ordinary
// Tracks through the same onTrack path as a client's, so local
// subscribers get the GOP cache, the retransmission ring and merged
// keyframe requests (which the relay track sends on to the origin).

import (
	"fmt"
	"strconv"

	"github.com/pion/webrtc/v4"
)

// NewPuller creates a receive-only peer connection with one audio and one
// video transceiver and returns its complete offer (every candidate
// gathered). The owner sends the offer to the origin and applies its
// answer with SetAnswer.
func (e *Engine) NewPuller(cfg PublisherConfig) (*Publisher, webrtc.SessionDescription, error) {
	var none webrtc.SessionDescription
	if e.isClosed() {
		return nil, none, ErrClosed
	}
	pc, err := e.newPeerConnection(e.pullAPI)
	if err != nil {
		return nil, none, fmt.Errorf("sfu: new peer connection: %w", err)
	}
	p := &Publisher{e: e, pc: pc, cfg: cfg, log: cfg.Logger, streamID: cfg.StreamID, expected: 2}
	if p.streamID == "" {
		p.streamID = StreamID("relay-" + strconv.FormatUint(e.trackSeq.Add(1), 10))
	}
	if err := e.register(p); err != nil {
		_ = pc.Close()
		return nil, none, err
	}
	e.stats.publishers.Add(1)
	pc.OnTrack(p.onTrack)
	pc.OnConnectionStateChange(p.onState)
	pc.OnICECandidate(p.onCandidate)
	offer, err := p.offer()
	if err != nil {
		_ = p.Close()
		return nil, none, err
	}
	p.described.Store(true)
	return p, offer, nil
}

// offer adds the receive-only transceivers and returns the complete offer.
func (p *Publisher) offer() (webrtc.SessionDescription, error) {
	var none webrtc.SessionDescription
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := p.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{
			Direction: webrtc.RTPTransceiverDirectionRecvonly,
		}); err != nil {
			return none, fmt.Errorf("sfu: add transceiver: %w", err)
		}
	}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return none, fmt.Errorf("sfu: create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return none, fmt.Errorf("sfu: set local description: %w", err)
	}
	if err := waitGathering(gathered); err != nil {
		return none, err
	}
	return *p.pc.LocalDescription(), nil
}

// SetAnswer applies the origin's answer to a puller's offer.
func (p *Publisher) SetAnswer(answer webrtc.SessionDescription) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if answer.Type != webrtc.SDPTypeAnswer {
		return fmt.Errorf("%w: expected an answer, got %s", ErrBadSDP, answer.Type)
	}
	if err := p.pc.SetRemoteDescription(answer); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	return nil
}
