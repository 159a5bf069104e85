package sfu

// Lock order: Publisher.mu guards tracks and closed. It is released before
// calling OnTrack or closing the peer connection, and no other sfu lock is
// taken while it is held.

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// PublisherConfig carries a publisher's callbacks.
type PublisherConfig struct {
	Logger zerolog.Logger
	// StreamID names the published stream; its tracks carry it (and it is
	// the msid stream subscribers see). Empty: the engine picks one.
	StreamID StreamID
	// OnTrack is called once per remote track, when its first packet arrives.
	OnTrack func(*Track)
	// OnICECandidate is called for each local candidate (trickle); nil when
	// the answer already carries every candidate.
	//
	// NewPublisher waits for gathering to complete, so the answer carries
	// every candidate and OnICECandidate only sees candidates found later
	// (in practice none).
	OnICECandidate func(webrtc.ICECandidateInit)
	// OnClose is called once when the peer connection fails or is closed
	// by the remote side. It is not called when the owner calls Close.
	OnClose func()
	// OnPath is called when the connection is up, with the path it took.
	OnPath func(Path)
}

// Publisher is an incoming one-way peer connection: the client offers
// sendonly tracks, the server answers recvonly.
type Publisher struct {
	e         *Engine
	pc        *webrtc.PeerConnection
	cfg       PublisherConfig
	log       zerolog.Logger
	streamID  StreamID
	expected  int
	gate      *candidateGate // nil for pullers
	path      pathSlot       // counts nothing for pullers
	described atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu     sync.Mutex
	tracks []*Track
	closed bool
}

// NewPublisher answers a client's offer.
func (e *Engine) NewPublisher(offer webrtc.SessionDescription, cfg PublisherConfig) (*Publisher, webrtc.SessionDescription, error) {
	var none webrtc.SessionDescription
	if e.isClosed() {
		return nil, none, ErrClosed
	}
	expected, err := countSections(offer, webrtc.SDPTypeOffer, e.forwardable)
	if err != nil {
		return nil, none, err
	}
	pc, err := e.newPeerConnection(e.api)
	if err != nil {
		return nil, none, fmt.Errorf("sfu: new peer connection: %w", err)
	}
	p := &Publisher{e: e, pc: pc, cfg: cfg, log: cfg.Logger, streamID: cfg.StreamID, expected: expected, gate: e.newGate(),
		path: pathSlot{e: e}}
	if p.streamID == "" {
		p.streamID = StreamID("stream-" + strconv.FormatUint(e.trackSeq.Add(1), 10))
	}
	if err := e.register(p); err != nil {
		_ = pc.Close()
		return nil, none, err
	}
	e.stats.publishers.Add(1)
	pc.OnTrack(p.onTrack)
	pc.OnConnectionStateChange(p.onState)
	pc.OnICECandidate(p.onCandidate)
	answer, err := p.answer(offer)
	if err != nil {
		_ = p.Close()
		return nil, none, err
	}
	p.described.Store(true)
	return p, answer, nil
}

// answer applies the offer and returns the complete answer.
func (p *Publisher) answer(offer webrtc.SessionDescription) (webrtc.SessionDescription, error) {
	var none webrtc.SessionDescription
	offer.SDP = p.gate.filterSDP(offer.SDP)
	if err := p.pc.SetRemoteDescription(offer); err != nil {
		return none, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return none, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return none, fmt.Errorf("sfu: set local description: %w", err)
	}
	if err := waitGathering(gathered); err != nil {
		return none, err
	}
	return *p.pc.LocalDescription(), nil
}

// countSections counts the audio and video sections of d (of type typ)
// that are not rejected and whose direction passes dir. It fails with
// ErrBadSDP when d is malformed or no section passes.
func countSections(d webrtc.SessionDescription, typ webrtc.SDPType, dir func(*sdp.MediaDescription) bool) (int, error) {
	if d.Type != typ {
		return 0, fmt.Errorf("%w: expected %s, got %s", ErrBadSDP, typ, d.Type)
	}
	parsed, err := d.Unmarshal()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	n := 0
	for _, m := range parsed.MediaDescriptions {
		kind := m.MediaName.Media
		if (kind == "audio" || kind == "video") && !rejected(m) && dir(m) {
			n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: the offer sends no media the engine forwards", ErrBadSDP)
	}
	return n, nil
}

// direction is a media section's direction attribute; RFC 8866 6.7:
// without one a section is sendrecv.
func direction(m *sdp.MediaDescription) string {
	for _, a := range m.Attributes {
		switch a.Key {
		case "sendonly", "sendrecv", "recvonly", "inactive":
			return a.Key
		}
	}
	return "sendrecv"
}

// forwardable: the offerer sends media in this section with at least one
// codec the engine forwards. A section offering only other codecs will
// never bring a track, so it is not expected.
func (e *Engine) forwardable(m *sdp.MediaDescription) bool {
	if d := direction(m); d != "sendonly" && d != "sendrecv" {
		return false
	}
	codecs := e.audio
	if m.MediaName.Media == "video" {
		codecs = e.video
	}
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		// rtpmap value: "<pt> <encoding name>/<clock rate>[/<channels>]"
		_, enc, _ := strings.Cut(a.Value, " ")
		name, _, _ := strings.Cut(enc, "/")
		for _, c := range codecs {
			if strings.EqualFold(c.MimeType, m.MediaName.Media+"/"+name) {
				return true
			}
		}
	}
	return false
}

// ExpectedTracks is the number of media sections the offer sends.
func (p *Publisher) ExpectedTracks() int { return p.expected }

// StreamID is the published stream's ID.
func (p *Publisher) StreamID() StreamID { return p.streamID }

// Tracks returns the tracks received so far.
func (p *Publisher) Tracks() []*Track {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Track(nil), p.tracks...)
}

// AddICECandidate adds a remote (trickled) candidate.
func (p *Publisher) AddICECandidate(c webrtc.ICECandidateInit) error {
	if !p.gate.admitInit(c) {
		return nil // dropped: see candidateGate
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCandidate, err)
	}
	return nil
}

// onTrack starts a Track for each remote track: its reader goroutine, a
// goroutine draining the receiver's RTCP (sender reports feed the receiver
// report interceptor) and one sending its keyframe requests.
func (p *Publisher) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	t := newTrack(trackParams{
		id: p.e.nextTrackID(remote.Kind()), streamID: p.streamID,
		codec: remote.Codec(), kind: remote.Kind(), ssrc: uint32(remote.SSRC()),
		src: remote, rtcp: p.pc.WriteRTCP, log: p.log, stats: &p.e.stats, pool: p.e.pool,
	})
	p.wg.Add(3)
	go func() { defer p.wg.Done(); t.run() }()
	go func() { defer p.wg.Done(); drainRTCP(recv, t) }()
	go func() { defer p.wg.Done(); t.keyLoop() }()
	select {
	case <-t.profiled:
		p.mu.Unlock()
		p.announce(t)
	default:
		// Published once its codec is known (Track.learnProfile).
		p.wg.Add(1)
		p.mu.Unlock()
		go func() {
			defer p.wg.Done()
			select {
			case <-t.profiled:
				p.announce(t)
			case <-t.done:
			}
		}()
	}
}

// announce lists t among the publisher's tracks and calls OnTrack.
func (p *Publisher) announce(t *Track) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.tracks = append(p.tracks, t)
	p.mu.Unlock()
	p.log.Debug().Str("track", string(t.id)).Str("codec", t.codec.MimeType).Msg("track published")
	if p.cfg.OnTrack != nil {
		p.cfg.OnTrack(t)
	}
}

// drainRTCP reads the receiver's RTCP (which keeps pion's interceptors
// fed) and keeps the latest Sender Report of t, the RTP/NTP mapping a
// recorder needs for lip sync (RFC 3550 6.4.1). Compound packets that fail
// to parse are skipped.
func drainRTCP(recv *webrtc.RTPReceiver, t *Track) {
	buf := make([]byte, 1500)
	for {
		n, _, err := recv.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, pkt := range pkts {
			if sr, ok := pkt.(*rtcp.SenderReport); ok {
				t.setSenderReport(sr)
			}
		}
	}
}

// onState closes the publisher when the connection fails or closes. A
// disconnected connection may recover (ICE keeps checking), so only
// failed, which follows when it does not, ends it.
func (p *Publisher) onState(s webrtc.PeerConnectionState) {
	switch s {
	case webrtc.PeerConnectionStateConnected:
		p.path.report(p.pc, p.cfg.OnPath)
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		p.close(true)
	}
}

func (p *Publisher) onCandidate(c *webrtc.ICECandidate) {
	if c == nil || p.cfg.OnICECandidate == nil || !p.described.Load() {
		return
	}
	p.cfg.OnICECandidate(c.ToJSON())
}

// Close tears the peer connection down; its tracks end.
func (p *Publisher) Close() error { return p.close(false) }

func (p *Publisher) close(remote bool) error {
	first := false
	p.closeOnce.Do(func() { first = true })
	if !first {
		return nil
	}
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.path.release()
	err := p.pc.Close()
	p.wg.Wait() // the readers end their tracks: Done closes, sinks detach
	p.e.forget(p)
	p.e.stats.publishers.Add(-1)
	if remote && p.cfg.OnClose != nil {
		p.cfg.OnClose()
	}
	return err
}
