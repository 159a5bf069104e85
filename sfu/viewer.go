package sfu

// Lock order: Viewer.mu guards closed, connected and want; while holding
// it the viewer swaps its down tracks' sources, which calls Track.AddSink
// and Track.RemoveSink (taking Track.mu). So Viewer.mu -> Track.mu, the
// same order as Subscriber.mu -> Track.mu; Track never calls back into a
// Viewer. Callbacks to the owner (OnClose) are made with no lock held.

import (
	"fmt"
	"strings"
	"sync"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// ViewerConfig configures a Viewer.
type ViewerConfig struct {
	Logger zerolog.Logger
	// StreamID is the msid stream of the viewer's tracks (RFC 8830).
	StreamID StreamID
	// OnClose is called once when the peer connection fails or is closed
	// by the remote side. It is not called when the owner calls Close.
	OnClose func()
	// OnPath is called when the connection is up, with the path it took.
	OnPath func(Path)
}

// Viewer is an outgoing one-way peer connection that answers the client's
// receive-only offer (the WHEP model, where the client offers). It has at
// most one down track per kind, and each down track's source can be
// changed at any time with SetSource: the viewer keeps one peer connection
// while the tracks it forwards come and go.
type Viewer struct {
	e         *Engine
	pc        *webrtc.PeerConnection
	out       *directOut
	cfg       ViewerConfig
	log       zerolog.Logger
	gate      *candidateGate
	path      pathSlot
	offered   map[webrtc.RTPCodecType]bool
	downs     map[webrtc.RTPCodecType]*DownTrack
	codecs    map[webrtc.RTPCodecType][]webrtc.RTPCodecParameters
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	connected bool
	want      map[webrtc.RTPCodecType]*Track
	reading   bool         // the down tracks' RTCP readers run
	ownShard  *writerShard // the down tracks' own writer over ICE-TCP
}

// NewViewer answers a client's offer to receive audio and/or video. The
// answer carries, per media section, every codec both the client and the
// engine support, so a later source may use any of them. It fails with
// ErrBadSDP when the offer is malformed or receives nothing, and with
// ErrUnsupportedCodec when no section offers a codec the engine forwards.
func (e *Engine) NewViewer(offer webrtc.SessionDescription, cfg ViewerConfig) (*Viewer, webrtc.SessionDescription, error) {
	var none webrtc.SessionDescription
	if e.isClosed() {
		return nil, none, ErrClosed
	}
	kinds, offered, err := e.offerKinds(offer, false)
	if err != nil {
		return nil, none, err
	}
	out := newDirectOut(e.udpConn, &e.taps, &e.stats, cfg.Logger)
	pc, err := e.newOutPeerConnection(out, offersPassive(offer.SDP))
	if err != nil {
		return nil, none, fmt.Errorf("sfu: new peer connection: %w", err)
	}
	v := &Viewer{
		e: e, pc: pc, out: out, cfg: cfg, log: cfg.Logger, gate: e.newGate(), path: pathSlot{e: e},
		offered: offered,
		downs:   map[webrtc.RTPCodecType]*DownTrack{},
		codecs:  map[webrtc.RTPCodecType][]webrtc.RTPCodecParameters{},
		want:    map[webrtc.RTPCodecType]*Track{},
	}
	out.needReaders = v.startReaders
	out.lost = func() { go v.close(true) }
	if err := e.register(v); err != nil {
		_ = pc.Close()
		return nil, none, err
	}
	e.stats.subscribers.Add(1)
	pc.OnConnectionStateChange(v.onState)
	answer, err := v.answer(offer, kinds)
	if err != nil {
		_ = v.Close()
		return nil, none, err
	}
	return v, answer, nil
}

// offersPassive reports whether an offer takes the DTLS server's role
// (a=setup:passive), which an offerer should not (RFC 5763 5: actpass),
// so that the answer does not claim it too.
func offersPassive(sdp string) bool { return strings.Contains(sdp, "a=setup:passive") }

// answer adds one sendonly transceiver per receivable kind, then applies
// the offer (pion pairs each with the client's section of its kind) and
// returns the complete answer.
func (v *Viewer) answer(offer webrtc.SessionDescription, kinds []webrtc.RTPCodecType) (webrtc.SessionDescription, error) {
	var none webrtc.SessionDescription
	for _, kind := range kinds {
		d := newSwitchDownTrack(kind, kind.String(), string(v.cfg.StreamID), &v.e.stats, v.log)
		d.direct = v.out
		tr, err := v.pc.AddTransceiverFromTrack(d, webrtc.RTPTransceiverInit{
			Direction: webrtc.RTPTransceiverDirectionSendonly,
		})
		if err != nil {
			return none, fmt.Errorf("sfu: add transceiver: %w", err)
		}
		v.downs[kind] = d
		d.sender = tr.Sender()
		v.out.downs = append(v.out.downs, d)
	}
	offer.SDP = v.gate.filterSDP(offer.SDP)
	if err := v.pc.SetRemoteDescription(offer); err != nil {
		return none, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	answer, err := v.pc.CreateAnswer(nil)
	if err != nil {
		// pion refuses a sender whose section shares no codec with it.
		return none, fmt.Errorf("%w: %v", ErrUnsupportedCodec, err)
	}
	gathered := webrtc.GatheringCompletePromise(v.pc)
	if err := v.pc.SetLocalDescription(answer); err != nil {
		return none, fmt.Errorf("sfu: set local description: %w", err)
	}
	if err := waitGathering(gathered); err != nil {
		return none, err
	}
	for kind, d := range v.downs {
		v.codecs[kind] = primaryCodecs(d.sender.GetParameters().Codecs)
	}
	return *v.pc.LocalDescription(), nil
}

// Offered reports whether the client's offer receives kind at all, with a
// codec the engine forwards or not.
func (v *Viewer) Offered(kind webrtc.RTPCodecType) bool { return v.offered[kind] }

// Kinds lists the kinds the viewer receives.
func (v *Viewer) Kinds() []webrtc.RTPCodecType {
	var out []webrtc.RTPCodecType
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if v.downs[k] != nil {
			out = append(out, k)
		}
	}
	return out
}

// Accepts reports whether the viewer negotiated t's codec, so that t can be
// its source.
//
// The match follows forwarding's rules (matchCodec): a VP9 profile must
// be the same, an H.264 stream needs a packetization mode the viewer
// takes, and goes as the viewer's closest profile.
func (v *Viewer) Accepts(t *Track) bool {
	_, ok := matchCodec(t.codec, v.codecs[t.kind])
	return ok && v.downs[t.kind] != nil
}

// SetSource makes t the source of the viewer's down track of kind (nil:
// none). While the peer connection is not connected yet the source is
// remembered and attached on connection. A track whose codec the viewer
// did not negotiate is not attached: ErrUnsupportedCodec, and that kind
// gets no media until another source is set.
func (v *Viewer) SetSource(kind webrtc.RTPCodecType, t *Track) error {
	d := v.downs[kind]
	if d == nil {
		return nil // the client does not receive this kind
	}
	var err error
	if t != nil && !v.Accepts(t) {
		err = fmt.Errorf("%w: the viewer did not offer %s", ErrUnsupportedCodec, t.codec.MimeType)
		t = nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	v.want[kind] = t
	if v.connected {
		d.setSource(t)
	}
	return err
}

// DownTracks returns the viewer's down tracks.
func (v *Viewer) DownTracks() []*DownTrack {
	var out []*DownTrack
	for _, k := range v.Kinds() {
		out = append(out, v.downs[k])
	}
	return out
}

// AddICECandidate adds a remote (trickled) candidate.
func (v *Viewer) AddICECandidate(c webrtc.ICECandidateInit) error {
	if !v.gate.admitInit(c) {
		return nil // dropped: see candidateGate
	}
	if err := v.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCandidate, err)
	}
	return nil
}

// onState attaches the sources once media can flow (before, SRTP is not
// ready and the primed keyframe would be lost), and closes the viewer when
// the connection fails or closes.
func (v *Viewer) onState(st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		v.attach()
		v.path.report(v.pc, v.cfg.OnPath)
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		v.close(true)
	}
}

func (v *Viewer) attach() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed || v.connected {
		return
	}
	v.connected = true
	if !v.out.start() {
		v.startReadersLocked()
	}
	sh, own := v.e.shardFor(v.pc)
	if own {
		v.ownShard = sh
	}
	for kind, d := range v.downs {
		if own {
			d.growQueue()
		}
		d.setShard(sh)
		d.setSource(v.want[kind])
	}
}

// startReaders reads the down tracks' RTCP through pion, for as long as
// it does not come the direct way (direct.go).
func (v *Viewer) startReaders() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.startReadersLocked()
}

func (v *Viewer) startReadersLocked() {
	if v.closed || v.reading {
		return
	}
	v.reading = true
	startRTCPReaders(&v.wg, v.out.downs)
}

// Close tears the peer connection down and detaches its down tracks.
func (v *Viewer) Close() error { return v.close(false) }

func (v *Viewer) close(remote bool) error {
	first := false
	v.closeOnce.Do(func() { first = true })
	if !first {
		return nil
	}
	v.out.close()
	v.path.release()
	v.mu.Lock()
	v.closed = true
	for _, d := range v.downs {
		d.setSource(nil)
		d.stop()
	}
	v.mu.Unlock()
	err := v.pc.Close() // stops the senders: the RTCP readers return
	v.wg.Wait()
	if v.ownShard != nil {
		v.ownShard.stop() // it releases the down tracks' queues first
	}
	for _, d := range v.downs {
		d.drain()
	}
	v.e.forget(v)
	v.e.stats.subscribers.Add(-1)
	if remote && v.cfg.OnClose != nil {
		v.cfg.OnClose()
	}
	return err
}
