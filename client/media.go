package client

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"lectern/internal/mediafile"
)

// PublisherOptions names the media a Publisher sends.
type PublisherOptions struct {
	// IVF is a VP8 IVF file (testdata/clip.ivf); empty: no video track.
	IVF string
	// Ogg is an Ogg Opus file with one packet per page (testdata/clip.ogg);
	// empty: no audio track.
	Ogg string
	// StreamID is the tracks' media stream id (default "lectern").
	StreamID string
}

// SentStats counts what one track of a Publisher handed to its peer connection.
type SentStats struct {
	Samples uint64 // frames (video) or Opus packets (audio)
	Packets uint64 // RTP packets
	Bytes   uint64 // RTP payload bytes
}

// Publisher plays media files in real time, looping, on
// TrackLocalStaticSample tracks, and counts the RTP packets it sends. Its
// tracks are meant for one peer connection: the counters sum every
// connection the tracks are bound to.
type Publisher struct {
	video, audio *countingTrack
	stop         chan struct{}
	wg           sync.WaitGroup
	mu           sync.Mutex // guards started, stopped
	started      bool
	stopped      bool
}

// NewPublisher loads the media files into memory and builds the tracks.
func NewPublisher(opts PublisherOptions) (*Publisher, error) {
	if opts.IVF == "" && opts.Ogg == "" {
		return nil, fmt.Errorf("%w: no IVF or Ogg file given", ErrMedia)
	}
	if opts.StreamID == "" {
		opts.StreamID = "lectern"
	}
	p := &Publisher{stop: make(chan struct{})}
	if opts.IVF != "" {
		video, err := mediafile.LoadIVF(opts.IVF)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMedia, err)
		}
		frames := video.Frames
		codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
		if p.video, err = newCountingTrack(codec, "video", opts.StreamID, frames); err != nil {
			return nil, err
		}
	}
	if opts.Ogg != "" {
		frames, err := mediafile.LoadOgg(opts.Ogg)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMedia, err)
		}
		codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
		if p.audio, err = newCountingTrack(codec, "audio", opts.StreamID, frames); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Tracks returns the tracks to pass to Client.Publish: video first.
func (p *Publisher) Tracks() []webrtc.TrackLocal {
	var out []webrtc.TrackLocal
	if p.video != nil {
		out = append(out, p.video)
	}
	if p.audio != nil {
		out = append(out, p.audio)
	}
	return out
}

// Start begins sending, one goroutine per track. Samples written before
// the peer connection is connected are dropped by pion and not counted.
func (p *Publisher) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.stopped {
		return
	}
	p.started = true
	for _, t := range []*countingTrack{p.video, p.audio} {
		if t != nil {
			p.wg.Add(1)
			go p.pump(t)
		}
	}
}

// Stop stops sending and waits for the sending goroutines.
func (p *Publisher) Stop() {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		close(p.stop)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Sent returns the counters of the track of kind (zero if there is none).
func (p *Publisher) Sent(kind webrtc.RTPCodecType) SentStats {
	t := p.video
	if kind == webrtc.RTPCodecTypeAudio {
		t = p.audio
	}
	if t == nil {
		return SentStats{}
	}
	return SentStats{Samples: t.samples.Load(), Packets: t.packets.Load(), Bytes: t.bytes.Load()}
}

// pump writes the track's frames at their pace. When it falls behind by
// more than a second (a starved CPU), it resynchronises instead of bursting.
func (p *Publisher) pump(t *countingTrack) {
	defer p.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	next := time.Now()
	for i := 0; ; i = (i + 1) % len(t.frames) {
		f := t.frames[i]
		if t.WriteSample(media.Sample{Data: f.Data, Duration: f.Dur}) == nil {
			t.samples.Add(1)
		}
		next = next.Add(f.Dur)
		wait := time.Until(next)
		if wait < -time.Second {
			next, wait = time.Now(), 0
		}
		timer.Reset(wait)
		select {
		case <-p.stop:
			return
		case <-timer.C:
		}
	}
}

// countingTrack is a TrackLocalStaticSample whose write streams count the
// RTP packets that reach the peer connection.
type countingTrack struct {
	*webrtc.TrackLocalStaticSample
	frames                  []mediafile.Frame
	samples, packets, bytes atomic.Uint64
}

func newCountingTrack(c webrtc.RTPCodecCapability, id, stream string, frames []mediafile.Frame) (*countingTrack, error) {
	t, err := webrtc.NewTrackLocalStaticSample(c, id, stream)
	if err != nil {
		return nil, fmt.Errorf("client: track: %w", err)
	}
	return &countingTrack{TrackLocalStaticSample: t, frames: frames}, nil
}

// Bind wraps the peer connection's write stream in a counter.
func (t *countingTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	return t.TrackLocalStaticSample.Bind(countingContext{TrackLocalContext: ctx, t: t})
}

type countingContext struct {
	webrtc.TrackLocalContext
	t *countingTrack
}

func (c countingContext) WriteStream() webrtc.TrackLocalWriter {
	return countingWriter{w: c.TrackLocalContext.WriteStream(), t: c.t}
}

type countingWriter struct {
	w webrtc.TrackLocalWriter
	t *countingTrack
}

// WriteRTP counts a packet only when it was written: before DTLS is up
// pion drops packets and reports 0 bytes.
func (c countingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n, err := c.w.WriteRTP(h, payload)
	if err == nil && n > 0 {
		c.t.packets.Add(1)
		c.t.bytes.Add(uint64(len(payload)))
	}
	return n, err
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	if err == nil && n > 0 {
		c.t.packets.Add(1)
		c.t.bytes.Add(uint64(max(len(b)-12, 0)))
	}
	return n, err
}
