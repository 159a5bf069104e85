package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"lectern/client"
	"lectern/internal/mediafile"
)

// publisher is the teacher: it plays the clip in real time, looping, and
// records every video packet it writes in the run's send log.
//
// Goroutines: one pump per track (started by start, ended by stop), one
// RTCP reader per sender (ends when the peer connection closes).
type publisher struct {
	env          *runEnv
	clip         *clip
	video, audio *webrtc.TrackLocalStaticSample

	videoPackets atomic.Uint64 // also the index of the last video packet
	videoBytes   atomic.Uint64 // RTP payload bytes
	audioPackets atomic.Uint64
	audioBytes   atomic.Uint64
	frames       atomic.Uint64
	keyRequests  atomic.Uint64 // PLI and FIR from the server
	sendErrors   atomic.Uint64

	close func(ctx context.Context) error

	stopOnce sync.Once
	stopCh   chan struct{}
	pumps    sync.WaitGroup
	readers  sync.WaitGroup
}

func newPublisher(env *runEnv, c *clip) (*publisher, error) {
	p := &publisher{env: env, clip: c, stopCh: make(chan struct{})}
	var err error
	p.video, err = webrtc.NewTrackLocalStaticSample(
		webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "lectern-bench")
	if err != nil {
		return nil, fmt.Errorf("bench: video track: %w", err)
	}
	if len(c.audio) > 0 {
		p.audio, err = webrtc.NewTrackLocalStaticSample(
			webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "lectern-bench")
		if err != nil {
			return nil, fmt.Errorf("bench: audio track: %w", err)
		}
	}
	return p, nil
}

// tracks are the hooked tracks to add to a peer connection, video first.
func (p *publisher) tracks() []webrtc.TrackLocal {
	out := []webrtc.TrackLocal{&hookedTrack{TrackLocalStaticSample: p.video, onRTP: p.sentVideo}}
	if p.audio != nil {
		out = append(out, &hookedTrack{TrackLocalStaticSample: p.audio, onRTP: p.sentAudio})
	}
	return out
}

// sentVideo runs just before a video packet is written: it gives the packet
// its index and records its send time under its payload's hash.
func (p *publisher) sentVideo(payload []byte) {
	idx := p.videoPackets.Add(1)
	p.videoBytes.Add(uint64(len(payload)))
	p.env.sends.put(p.env.sends.hash(payload), sendRecord{at: p.env.clock.now(), idx: idx})
}

func (p *publisher) sentAudio(payload []byte) {
	p.audioPackets.Add(1)
	p.audioBytes.Add(uint64(len(payload)))
}

// connectWHIP publishes through POST /whip/{room} and waits until the
// peer connection is connected.
func (p *publisher) connectWHIP(ctx context.Context) error {
	token, err := p.env.tokens.teacher()
	if err != nil {
		return err
	}
	pc, err := p.env.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return fmt.Errorf("%w: peer connection: %w", ErrPublish, err)
	}
	connected := connectedSignal(pc)
	for _, t := range p.tracks() {
		tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			_ = pc.Close()
			return fmt.Errorf("%w: add track: %w", ErrPublish, err)
		}
		p.readRTCP(tr.Sender())
	}
	s, err := negotiate(ctx, p.env.hc, endpointURL(p.env.base, "whip", p.env.opts.Room), token, pc)
	if err != nil {
		_ = pc.Close()
		return fmt.Errorf("%w: %w", ErrPublish, err)
	}
	p.close = func(ctx context.Context) error {
		return errors.Join(s.end(ctx), pc.Close())
	}
	return p.waitConnected(ctx, connected)
}

// connectWS publishes the teacher's camera over the classroom protocol.
func (p *publisher) connectWS(ctx context.Context) error {
	token, err := p.env.tokens.teacher()
	if err != nil {
		return err
	}
	c, err := client.Dial(ctx, p.env.base, token, client.Options{
		Logger: p.env.log, API: p.env.api, NoSubscribe: true,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPublish, err)
	}
	p.close = func(context.Context) error { return c.Close() }
	pub, err := c.Publish(ctx, client.LabelCamera, p.tracks())
	if err == nil {
		err = pub.WaitConnected(ctx)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPublish, err)
	}
	return nil
}

func (p *publisher) waitConnected(ctx context.Context, connected <-chan error) error {
	select {
	case err := <-connected:
		if err != nil {
			return fmt.Errorf("%w: %w", ErrPublish, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: not connected: %w", ErrPublish, ctx.Err())
	}
}

// connectedSignal yields nil once pc is connected, or an error if it fails
// or closes first.
func connectedSignal(pc *webrtc.PeerConnection) <-chan error {
	ch := make(chan error, 1)
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			once.Do(func() { ch <- nil })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			once.Do(func() { ch <- fmt.Errorf("peer connection %s", st) })
		}
	})
	return ch
}

// readRTCP counts the server's keyframe requests. The clip cannot make a
// keyframe on demand: the next one comes at most two seconds later.
func (p *publisher) readRTCP(s *webrtc.RTPSender) {
	p.readers.Add(1)
	go func() {
		defer p.readers.Done()
		for range 1 << 40 {
			pkts, _, err := s.ReadRTCP()
			if err != nil {
				return
			}
			for _, pkt := range pkts {
				switch pkt.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					p.keyRequests.Add(1)
				}
			}
		}
	}()
}

// start begins sending, one goroutine per track.
func (p *publisher) start() {
	p.pumps.Add(1)
	go p.pump(p.video, p.clip.video, true)
	if p.audio != nil {
		p.pumps.Add(1)
		go p.pump(p.audio, p.clip.audio, false)
	}
}

// stop ends sending; the peer connection stays up until shutdown.
func (p *publisher) stop() {
	p.stopOnce.Do(func() { close(p.stopCh) })
	p.pumps.Wait()
}

// shutdown stops sending, ends the session and waits for the RTCP readers.
func (p *publisher) shutdown(ctx context.Context) error {
	p.stop()
	var err error
	if p.close != nil {
		err = p.close(ctx)
	}
	p.readers.Wait()
	return err
}

// pump writes frames at their pace, looping. When it falls behind by more
// than a second (a starved CPU), it resynchronises instead of bursting.
func (p *publisher) pump(t *webrtc.TrackLocalStaticSample, frames []mediafile.Frame, video bool) {
	defer p.pumps.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	next := time.Now()
	for i := 0; ; i = (i + 1) % len(frames) {
		f := frames[i]
		if err := t.WriteSample(media.Sample{Data: f.Data, Duration: f.Dur}); err != nil {
			p.sendErrors.Add(1)
		} else if video {
			p.frames.Add(1)
		}
		next = next.Add(f.Dur)
		wait := time.Until(next)
		if wait < -time.Second {
			next, wait = time.Now(), 0
		}
		timer.Reset(wait)
		select {
		case <-p.stopCh:
			return
		case <-timer.C:
		}
	}
}

// hookedTrack is a TrackLocalStaticSample whose write stream calls onRTP
// with each packet's payload just before writing it.
type hookedTrack struct {
	*webrtc.TrackLocalStaticSample
	onRTP func(payload []byte)
}

func (t *hookedTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	return t.TrackLocalStaticSample.Bind(hookedContext{TrackLocalContext: ctx, onRTP: t.onRTP})
}

type hookedContext struct {
	webrtc.TrackLocalContext
	onRTP func(payload []byte)
}

func (c hookedContext) WriteStream() webrtc.TrackLocalWriter {
	return hookedWriter{w: c.TrackLocalContext.WriteStream(), onRTP: c.onRTP}
}

type hookedWriter struct {
	w     webrtc.TrackLocalWriter
	onRTP func(payload []byte)
}

func (h hookedWriter) WriteRTP(hdr *rtp.Header, payload []byte) (int, error) {
	h.onRTP(payload)
	return h.w.WriteRTP(hdr, payload)
}

func (h hookedWriter) Write(b []byte) (int, error) {
	var pkt rtp.Packet
	if err := pkt.Unmarshal(b); err == nil {
		h.onRTP(pkt.Payload)
	}
	return h.w.Write(b)
}
