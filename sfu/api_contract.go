package sfu

// This file is the contract the rest of Lectern codes against while the
// media plane is being built. Every exported name here is kept; the bodies
// are replaced by the real implementation.

import (
	"errors"
	"net"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// ErrNotImplemented is returned by contract stubs.
var ErrNotImplemented = errors.New("sfu: not implemented")

// Config configures an Engine. It is filled in cmd/ from the process Config.
type Config struct {
	// UDPPort is the one UDP port carrying all ICE traffic (0: any free port).
	UDPPort int
	// TCPPort is the ICE-TCP fallback port (0: any free port, -1: disabled).
	TCPPort int
	// PublicIP, when set, is the only address put in ICE candidates.
	PublicIP string
	// Logger receives the engine's logs; pion's logs are bridged into it.
	Logger zerolog.Logger
}

// Engine owns the shared ICE sockets and the configured pion API.
type Engine struct{}

// NewEngine opens the ICE sockets and builds the pion API.
func NewEngine(cfg Config) (*Engine, error) { return nil, ErrNotImplemented }

// UDPAddr is the bound ICE UDP address.
func (e *Engine) UDPAddr() *net.UDPAddr { return nil }

// TCPAddr is the bound ICE-TCP address, nil when disabled.
func (e *Engine) TCPAddr() *net.TCPAddr { return nil }

// Stats returns counters summed over the engine's life.
func (e *Engine) Stats() Stats { return Stats{} }

// Close closes every peer connection and the shared sockets.
func (e *Engine) Close() error { return nil }

// Stats are cumulative counters, read by the metrics endpoint.
type Stats struct {
	PacketsIn        uint64
	BytesIn          uint64
	PacketsForwarded uint64
	BytesOut         uint64
	PacketsDropped   uint64
	NACKsServed      uint64
	KeyframeRequests uint64 // sent to publishers, after merging
	Tracks           int64  // live published tracks now
	Subscribers      int64  // live subscriber peer connections now
	Publishers       int64  // live publisher peer connections now
}

// PublisherConfig carries a publisher's callbacks.
type PublisherConfig struct {
	Logger zerolog.Logger
	// OnTrack is called once per remote track, when its first packet arrives.
	OnTrack func(*Track)
	// OnICECandidate is called for each local candidate (trickle); nil when
	// the answer already carries every candidate.
	OnICECandidate func(webrtc.ICECandidateInit)
	// OnClose is called once when the peer connection fails or is closed.
	OnClose func()
}

// Publisher is an incoming one-way peer connection: the client offers
// sendonly tracks, the server answers recvonly.
type Publisher struct{}

// NewPublisher answers a client's offer.
func (e *Engine) NewPublisher(offer webrtc.SessionDescription, cfg PublisherConfig) (*Publisher, webrtc.SessionDescription, error) {
	return nil, webrtc.SessionDescription{}, ErrNotImplemented
}

// ExpectedTracks is the number of media sections the offer sends.
func (p *Publisher) ExpectedTracks() int { return 0 }

// Tracks returns the tracks received so far.
func (p *Publisher) Tracks() []*Track { return nil }

// AddICECandidate adds a remote (trickled) candidate.
func (p *Publisher) AddICECandidate(c webrtc.ICECandidateInit) error { return ErrNotImplemented }

// Close tears the peer connection down; its tracks end.
func (p *Publisher) Close() error { return nil }

// Track is one published track with its single reader goroutine, its
// retransmission buffer and its cached group of pictures.
type Track struct{}

// ID is unique within the engine.
func (t *Track) ID() TrackID { return "" }

// Kind is audio or video.
func (t *Track) Kind() webrtc.RTPCodecType { return 0 }

// Codec is the negotiated codec of the publisher.
func (t *Track) Codec() webrtc.RTPCodecParameters { return webrtc.RTPCodecParameters{} }

// AddSink starts delivering packets to s. A video sink is primed with the
// cached packets since the last keyframe, so it starts on a keyframe.
func (t *Track) AddSink(s Sink) {}

// RemoveSink stops delivering packets to s.
func (t *Track) RemoveSink(s Sink) {}

// RequestKeyframe asks the publisher for a keyframe; requests are merged
// and rate-limited.
func (t *Track) RequestKeyframe() {}

// Done is closed when the track ends.
func (t *Track) Done() <-chan struct{} { return nil }

// Sink takes a track's packets. Deliver is called from the track's reader
// goroutine and must never block; a sink that keeps p calls p.Retain and
// later p.Release.
type Sink interface {
	Deliver(p *Packet)
}

// Packet is a received RTP packet shared, immutable, by every sink.
type Packet struct{}

// Header is the packet's header as received. Callers must not modify it.
func (p *Packet) Header() *rtp.Header { return nil }

// Payload is the packet's payload. Callers must not modify it.
func (p *Packet) Payload() []byte { return nil }

// Keyframe reports whether this packet starts a keyframe (video only).
func (p *Packet) Keyframe() bool { return false }

// Retain adds a reference.
func (p *Packet) Retain() {}

// Release drops a reference; the last one returns the buffer to its pool.
func (p *Packet) Release() {}

// SubscriberConfig carries a subscriber's callbacks.
type SubscriberConfig struct {
	Logger         zerolog.Logger
	OnICECandidate func(webrtc.ICECandidateInit)
	OnClose        func()
}

// Subscriber is an outgoing one-way peer connection: the server offers one
// sendonly section per track, the client answers.
type Subscriber struct{}

// NewSubscriber builds the peer connection and returns the server's offer.
func (e *Engine) NewSubscriber(tracks []*Track, cfg SubscriberConfig) (*Subscriber, webrtc.SessionDescription, error) {
	return nil, webrtc.SessionDescription{}, ErrNotImplemented
}

// SetAnswer applies the client's answer.
func (s *Subscriber) SetAnswer(answer webrtc.SessionDescription) error { return ErrNotImplemented }

// AddICECandidate adds a remote (trickled) candidate.
func (s *Subscriber) AddICECandidate(c webrtc.ICECandidateInit) error { return ErrNotImplemented }

// Close tears the peer connection down and detaches its down tracks.
func (s *Subscriber) Close() error { return nil }
