package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// Publication is one stream the client publishes: a sendonly peer connection.
type Publication struct {
	c       *Client
	id      string
	label   string
	pc      *webrtc.PeerConnection
	trickle trickle
	replyCh chan publishReply

	state     atomic.Int32 // webrtc.PeerConnectionState
	connected chan struct{}
	keyReqs   atomic.Uint64 // PLI and FIR received

	mu        sync.Mutex // guards remoteSet, remote, closed and rtcp.Add
	remoteSet bool
	remote    []webrtc.ICECandidateInit
	closed    bool
	rtcp      sync.WaitGroup
	done      chan struct{}
}

type publishReply struct {
	answer *Answer
	err    *ServerError
}

// ID is the stream id the client chose.
func (p *Publication) ID() string { return p.id }

// Label is camera or screen.
func (p *Publication) Label() string { return p.label }

// State is the peer connection's state.
func (p *Publication) State() webrtc.PeerConnectionState {
	return webrtc.PeerConnectionState(p.state.Load())
}

// KeyframeRequests counts the PLI and FIR messages (RFC 4585 section
// 6.3.1, RFC 5104 section 4.3.1) the server sent for this stream.
func (p *Publication) KeyframeRequests() uint64 { return p.keyReqs.Load() }

// Done is closed when the peer connection is closed (Close, or the server
// ended the stream with stream_closed).
func (p *Publication) Done() <-chan struct{} { return p.done }

// WaitConnected waits until the peer connection is connected.
func (p *Publication) WaitConnected(ctx context.Context) error {
	select {
	case <-p.connected:
		return nil
	case <-p.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends the stream (`unpublish`) and closes its peer connection.
func (p *Publication) Close() error {
	p.c.mu.Lock()
	ours := p.c.pubs[p.id] == p
	if ours {
		delete(p.c.pubs, p.id)
	}
	p.c.mu.Unlock()
	if ours {
		_ = p.c.send(TypeUnpublish, p.c.newRID(TypeUnpublish), StreamRef{Stream: p.id})
	}
	p.closePC()
	return nil
}

// Publications lists the client's live publications.
func (c *Client) Publications() []*Publication {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Publication, 0, len(c.pubs))
	for _, p := range c.pubs {
		out = append(out, p)
	}
	return out
}

// Publish sends tracks as one stream with label (camera or screen): it
// builds a sendonly peer connection, sends `publish` with the offer,
// applies the server's answer and trickles candidates. A refusal comes
// back as a *ServerError (errors.Is(err, ErrForbidden)).
func (c *Client) Publish(ctx context.Context, label string, tracks []webrtc.TrackLocal) (*Publication, error) {
	if label != LabelCamera && label != LabelScreen {
		return nil, ErrBadLabel
	}
	if len(tracks) == 0 {
		return nil, ErrNoTracks
	}
	p, offer, err := c.newPublication(label, tracks)
	if err != nil {
		return nil, err
	}
	rid := c.newRID(TypePublish)
	if err := c.register(p, rid); err != nil {
		p.closePC()
		return nil, err
	}
	err = c.send(TypePublish, rid, publishData{Stream: p.id, Label: label, SDP: offer.SDP})
	if err == nil {
		p.trickle.flush()
		err = p.await(ctx)
	}
	if err != nil {
		c.unregister(p, rid)
		p.closePC()
		return nil, err
	}
	c.mu.Lock()
	delete(c.pending, rid)
	c.mu.Unlock()
	return p, nil
}

func (c *Client) newPublication(label string, tracks []webrtc.TrackLocal) (*Publication, webrtc.SessionDescription, error) {
	var none webrtc.SessionDescription
	pc, err := c.api.NewPeerConnection(c.rtcConfig())
	if err != nil {
		return nil, none, fmt.Errorf("client: peer connection: %w", err)
	}
	p := &Publication{
		c: c, id: label + "-" + randomID(), label: label, pc: pc,
		replyCh: make(chan publishReply, 1), connected: make(chan struct{}), done: make(chan struct{}),
	}
	p.trickle.send = func(ci *webrtc.ICECandidateInit) {
		_ = c.send(TypeICE, "", ICE{Stream: p.id, Candidate: ci})
	}
	pc.OnICECandidate(p.trickle.onCandidate)
	pc.OnConnectionStateChange(p.onState)
	for _, t := range tracks {
		tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			p.closePC()
			return nil, none, fmt.Errorf("client: add track: %w", err)
		}
		p.readRTCP(tr.Sender())
	}
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	if err != nil {
		p.closePC()
		return nil, none, fmt.Errorf("client: offer: %w", err)
	}
	return p, offer, nil
}

func (p *Publication) onState(st webrtc.PeerConnectionState) {
	p.state.Store(int32(st))
	if st == webrtc.PeerConnectionStateConnected {
		select {
		case <-p.connected:
		default:
			close(p.connected)
		}
	}
}

// readRTCP drains a sender's RTCP: pion's interceptors (NACK responder,
// reports) only run while it is read.
func (p *Publication) readRTCP(s *webrtc.RTPSender) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.rtcp.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.rtcp.Done()
		buf := make([]byte, 1500)
		for {
			n, _, err := s.Read(buf)
			if err != nil {
				return
			}
			pkts, err := rtcp.Unmarshal(buf[:n])
			if err != nil {
				continue
			}
			for _, pkt := range pkts {
				switch pkt.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					p.keyReqs.Add(1)
				}
			}
		}
	}()
}

func (c *Client) register(p *Publication, rid string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tornDown {
		return ErrClosed
	}
	c.pubs[p.id] = p
	c.pending[rid] = p
	return nil
}

func (c *Client) unregister(p *Publication, rid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, rid)
	if c.pubs[p.id] == p {
		delete(c.pubs, p.id)
	}
}

// reply hands the server's answer or error to the waiting Publish.
func (p *Publication) reply(a *Answer, e *ServerError) {
	select {
	case p.replyCh <- publishReply{answer: a, err: e}:
	default:
	}
}

func (c *Client) onAnswer(rid string, a *Answer) {
	c.mu.Lock()
	p := c.pubs[a.Stream]
	if p != nil {
		delete(c.pending, rid)
	}
	c.mu.Unlock()
	if p != nil {
		p.reply(a, nil)
	}
}

// await waits for the answer, applies it, then the candidates that came
// before it.
func (p *Publication) await(ctx context.Context) error {
	var r publishReply
	select {
	case r = <-p.replyCh:
	case <-p.c.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.err != nil {
		return r.err
	}
	err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: r.answer.SDP})
	if err != nil {
		return fmt.Errorf("client: apply answer: %w", err)
	}
	p.mu.Lock()
	p.remoteSet = true
	pending := p.remote
	p.remote = nil
	p.mu.Unlock()
	for _, ci := range pending {
		p.addICE(ci)
	}
	return nil
}

func (p *Publication) onRemoteICE(ci *webrtc.ICECandidateInit) {
	if ci == nil || ci.Candidate == "" {
		return
	}
	p.mu.Lock()
	if !p.remoteSet {
		p.remote = append(p.remote, *ci)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.addICE(*ci)
}

func (p *Publication) addICE(ci webrtc.ICECandidateInit) {
	if err := p.pc.AddICECandidate(ci); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
		p.c.log.Warn().Err(err).Str("stream", p.id).Msg("client: bad server candidate")
	}
}

// closePC closes the peer connection and waits for the RTCP readers.
func (p *Publication) closePC() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return
	}
	p.closed = true
	p.mu.Unlock()
	_ = p.pc.GracefulClose()
	p.rtcp.Wait()
	close(p.done)
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
