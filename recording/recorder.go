package recording

// Lock order: Recorder.mu -> sfu Track.mu (AddSink/RemoveSink are called
// with Recorder.mu held). Deliver, called by a track's reader goroutine,
// takes no lock. muxFile.mu is a leaf. Callbacks (OnError) run with no
// lock held.

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"

	"lectern/sfu"
)

const (
	defaultQueue     = 2048
	defaultCluster   = time.Second
	defaultCuesSpace = 256 << 10 // about 10,000 cue points: hours at one per second
	warnInterval     = 5 * time.Second
)

// Source is what a recorder needs from a published track. *sfu.Track
// implements it.
type Source interface {
	ID() sfu.TrackID
	Kind() webrtc.RTPCodecType
	Codec() webrtc.RTPCodecParameters
	AddSink(sfu.Sink)
	RemoveSink(sfu.Sink)
	RequestKeyframe()
	SenderReport() (ntp time.Time, rtpTS uint32, ok bool)
}

var _ Source = (*sfu.Track)(nil)

// Options configure a Recorder.
type Options struct {
	ID      RecordingID // empty: a random one
	Room    sfu.RoomID
	Teacher string
	Label   string // e.g. "camera" or "screen"
	Logger  zerolog.Logger
	// Catalog, when set, gets an incomplete entry when the file starts and
	// the final one on Stop.
	Catalog *Catalog
	// OnError is called once, from the recorder's goroutine, when the
	// recording stops by itself (ErrDiskFull, ErrWrite). The class is not
	// affected.
	OnError func(error)
	// QueueSize bounds the packets waiting for the writer (default 2048,
	// about 10 s of a 1.5 Mbit/s class). When full, packets are dropped
	// and counted; forwarding never waits for the disk.
	QueueSize int
	// ClusterInterval is the longest cluster (default 1 s, at most 30 s);
	// the file is put on disk once per interval, which bounds what a crash
	// loses.
	ClusterInterval time.Duration
	// Sync makes every flush an fsync as well (survives power loss, not
	// only a process crash).
	Sync bool
	// CuesSpace is the room reserved at the file start for the seek index.
	CuesSpace int

	create func(path string) (File, error) // tests put a slow or full disk here
}

func (o *Options) defaults() {
	if o.ID == "" {
		o.ID = NewID()
	}
	if o.QueueSize <= 0 {
		o.QueueSize = defaultQueue
	}
	if o.ClusterInterval <= 0 || o.ClusterInterval > 30*time.Second {
		o.ClusterInterval = defaultCluster
	}
	if o.CuesSpace < 64 {
		o.CuesSpace = defaultCuesSpace
	}
	if o.create == nil {
		o.create = createFile
	}
}

// item is one queued packet.
type item struct {
	in      *input
	p       *sfu.Packet
	arrival int64 // unix ns
}

// Recorder writes one recorded stream (a camera with its microphone, or a
// screen share) into one WebM/Matroska file. It is a Sink of each attached
// track; a single writer goroutine does everything else.
type Recorder struct {
	opts  Options
	log   zerolog.Logger
	dir   string
	queue chan item
	stop  chan struct{}
	done  chan struct{}

	drops    atomic.Uint64
	lastWarn atomic.Int64
	closed   atomic.Bool

	mu       sync.Mutex
	inputs   [2]*input // current input per kind: 0 video, 1 audio
	stopOnce sync.Once

	// Set by the writer goroutine before done is closed.
	info Info
	err  error
}

// New starts a recorder writing into dir. Nothing is written until
// Attach brings tracks and the first video key frame arrives.
func New(dir string, opts Options) (*Recorder, error) {
	opts.defaults()
	if !opts.ID.Valid() {
		return nil, ErrBadID
	}
	r := &Recorder{
		opts: opts, dir: dir,
		log:   opts.Logger.With().Str("recording", string(opts.ID)).Logger(),
		queue: make(chan item, opts.QueueSize),
		stop:  make(chan struct{}), done: make(chan struct{}),
	}
	w := newWriter(r)
	go w.run()
	return r, nil
}

// ID is the recording's ID.
func (r *Recorder) ID() RecordingID { return r.opts.ID }

// Drops is the number of packets dropped because the queue was full.
func (r *Recorder) Drops() uint64 { return r.drops.Load() }

// Attach records the tracks of one publisher (at most one video and one
// audio). Called again after the publisher reconnected, the new tracks
// replace the old ones of the same kind and the same file goes on; the
// time in between shows as a gap.
func (r *Recorder) Attach(tracks ...Source) error {
	ins, err := r.newInputs(tracks)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return ErrStopped
	}
	for _, in := range ins {
		k := in.kindIndex()
		if old := r.inputs[k]; old != nil {
			if old.spec.name != in.spec.name {
				return fmt.Errorf("%w: %s then %s", ErrCodecChanged, old.spec.name, in.spec.name)
			}
			old.current.Store(false)
			old.src.RemoveSink(old)
		}
		r.inputs[k] = in
		in.current.Store(true)
		in.src.AddSink(in)
		in.src.RequestKeyframe()
	}
	return nil
}

// newInputs validates the tracks and makes their sinks, sharing one
// sync group (one sender clock).
func (r *Recorder) newInputs(tracks []Source) ([]*input, error) {
	g := &syncGroup{}
	var ins []*input
	var seen [2]bool
	for _, t := range tracks {
		spec, ok := lookupCodec(t.Codec().MimeType)
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrUnsupportedCodec, t.Codec().MimeType)
		}
		in := newInput(r, t, spec, g)
		if seen[in.kindIndex()] {
			return nil, fmt.Errorf("%w: two %s tracks", ErrNoTracks, t.Kind())
		}
		seen[in.kindIndex()] = true
		ins = append(ins, in)
	}
	if len(ins) == 0 {
		return nil, ErrNoTracks
	}
	return ins, nil
}

// current returns the input of kind k (0 video, 1 audio), or nil.
func (r *Recorder) current(k int) *input {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inputs[k]
}

// detachAll removes every sink; a Deliver racing with it is ignored. The
// inputs stay, so the writer can still drain their jitter buffers.
func (r *Recorder) detachAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Swap(true) {
		return
	}
	for _, in := range r.inputs {
		if in != nil {
			in.src.RemoveSink(in)
		}
	}
}

// Stop detaches the tracks, writes what is queued, finalizes the file
// (Duration, Cues) and returns its description. After a write error it
// returns that error with what was written; with nothing written,
// ErrEmpty. Stop may be called more than once.
func (r *Recorder) Stop() (Info, error) {
	r.stopOnce.Do(func() {
		r.detachAll()
		close(r.stop)
	})
	<-r.done
	return r.info, r.err
}

// Done is closed when the recorder has finished (Stop, or a write error).
func (r *Recorder) Done() <-chan struct{} { return r.done }

func (r *Recorder) path(webmDoc bool) string {
	ext := ".mkv"
	if webmDoc {
		ext = ".webm"
	}
	return filepath.Join(r.dir, string(r.opts.ID)+ext)
}

// dropped counts a packet the queue had no room for and warns, at most
// once per warnInterval, so a stalled disk is visible without flooding
// the log.
func (r *Recorder) dropped() {
	n := r.drops.Add(1)
	now := time.Now().UnixNano()
	last := r.lastWarn.Load()
	if now-last < int64(warnInterval) || !r.lastWarn.CompareAndSwap(last, now) {
		return
	}
	r.log.Warn().Uint64("dropped", n).Msg("recording queue full (slow disk?): dropping packets")
}

// input is the Sink of one attached track.
type input struct {
	r       *Recorder
	src     Source
	spec    codecSpec
	group   *syncGroup
	current atomic.Bool
	lost    atomic.Bool // a packet was dropped: video must wait for a key frame

	st inputState // owned by the writer goroutine
}

func newInput(r *Recorder, src Source, spec codecSpec, g *syncGroup) *input {
	in := &input{r: r, src: src, spec: spec, group: g}
	in.st = newInputState(spec, src.Codec().ClockRate)
	return in
}

func (in *input) kindIndex() int {
	if in.spec.video {
		return 0
	}
	return 1
}

// Deliver implements sfu.Sink: never blocks. The packet's arrival (from
// the track's reader) anchors the timeline; packets made without one use
// the time of delivery.
func (in *input) Deliver(p *sfu.Packet) {
	at := p.Arrival()
	if at.IsZero() {
		at = time.Now()
	}
	in.deliver(p, at.UnixNano())
}

func (in *input) deliver(p *sfu.Packet, arrival int64) {
	if in.r.closed.Load() || !in.current.Load() {
		return
	}
	p.Retain()
	select {
	case in.r.queue <- item{in: in, p: p, arrival: arrival}:
	default:
		p.Release()
		in.lost.Store(true)
		in.r.dropped()
	}
}
