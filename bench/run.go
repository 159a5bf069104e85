package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

const (
	connectTimeout = 20 * time.Second
	leaveTimeout   = 5 * time.Second
	// leaveParallel bounds how many students leave at once.
	leaveParallel = 16
	// drainTime lets the last packets arrive after the publisher stops.
	drainTime = 300 * time.Millisecond
	// firstMediaTimeout bounds the wait for joined students' first keyframe.
	firstMediaTimeout = 5 * time.Second
)

// clock is the one clock of a run: the publisher stamps packets with it
// and the students read it on arrival (monotonic nanoseconds).
type clock struct{ start time.Time }

func (c clock) now() int64 { return int64(time.Since(c.start)) }

// runEnv is what the publisher and the students of one run share.
type runEnv struct {
	opts    *Options
	log     zerolog.Logger
	clock   clock
	api     *webrtc.API
	hc      *http.Client
	base    string
	tokens  tokenSource
	sends   *sendLog
	latency *histogram
}

// Run measures one run of o.Students students.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c, err := loadClip(o.IVF, o.Ogg)
	if err != nil {
		return nil, err
	}
	return runOnce(ctx, &o, c)
}

// runOnce starts or names the server, publishes, and measures.
func runOnce(ctx context.Context, o *Options, c *clip) (res *Result, err error) {
	t, err := openTarget(ctx, o, o.Logger)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.stop()) }()
	env, err := newRunEnv(o, t)
	if err != nil {
		return nil, err
	}
	defer env.hc.CloseIdleConnections()
	pub, err := newPublisher(env, c)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	if o.Publisher == PublishWS {
		err = pub.connectWS(cctx)
	} else {
		err = pub.connectWHIP(cctx)
	}
	cancel()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		defer cancel()
		if e := pub.shutdown(sctx); e != nil {
			o.Logger.Warn().Err(e).Msg("bench: publisher shutdown")
		}
	}()
	if err != nil {
		return nil, err
	}
	pub.start()
	r := newRunner(env, pub, t, c)
	return r.measure(ctx)
}

func newRunEnv(o *Options, t *target) (*runEnv, error) {
	env := &runEnv{
		opts: o, log: o.Logger, clock: clock{start: time.Now()}, hc: newHTTPClient(), base: t.base,
		sends: newSendLog(), latency: &histogram{},
	}
	var err error
	if env.api, err = newAPI(isLoopback(t.base), loggerFactory{log: o.Logger}); err != nil {
		return nil, err
	}
	if t.signer != nil {
		env.tokens = mintedTokens{signer: t.signer, room: o.Room}
	} else {
		env.tokens = givenTokens{teacherTok: o.TeacherToken, studentTok: o.StudentToken}
	}
	return env, nil
}

// runner measures one run once the publisher is sending.
type runner struct {
	env      *runEnv
	pub      *publisher
	target   *target
	clip     *clip
	students []*student
	t0       int64 // run clock at the start of the measurement
}

func newRunner(env *runEnv, pub *publisher, t *target, c *clip) *runner {
	r := &runner{env: env, pub: pub, target: t, clip: c, t0: env.clock.now()}
	r.students = make([]*student, env.opts.Students)
	for i := range r.students {
		r.students[i] = &student{env: env, n: i}
	}
	return r
}

// snap is a reading of every counter at one instant.
type snap struct {
	at        int64
	server    procUsage
	serverOK  bool
	tool      time.Duration
	pubBytes  uint64 // video and audio payload bytes published
	pubVideo  uint64 // video payload bytes published
	delivered uint64 // packets received by all students
	machine   machineUsage
	lat       *histCounts
	// per student
	bytes   []uint64
	matched []uint64
	maxIdx  []uint64
}

func (r *runner) snapshot() snap {
	n := len(r.students)
	s := snap{
		at: r.env.clock.now(), tool: selfCPU(), machine: readMachine(), lat: r.env.latency.snapshot(),
		bytes: make([]uint64, n), matched: make([]uint64, n), maxIdx: make([]uint64, n),
	}
	if r.target.pid != 0 {
		u, err := readProc(r.target.pid)
		s.server, s.serverOK = u, err == nil
	}
	s.pubVideo = r.pub.videoBytes.Load()
	s.pubBytes = s.pubVideo + r.pub.audioBytes.Load()
	for i, st := range r.students {
		s.bytes[i], s.matched[i], s.maxIdx[i] = st.bytes.Load(), st.matched.Load(), st.maxIdx.Load()
		s.delivered += st.packets.Load()
	}
	return s
}

// measure runs the phases: warm-up, joins, the measured period, teardown.
func (r *runner) measure(ctx context.Context) (*Result, error) {
	o := r.env.opts
	defer r.leaveAll()
	smp := newSampler(r)
	stopSampler := smp.start()
	defer stopSampler()
	if err := sleep(ctx, o.Warmup); err != nil {
		return nil, err
	}
	before := r.snapshot()
	r.joinAll(ctx)
	r.waitFirstMedia(ctx)
	settle := min(time.Second, o.Duration/4)
	if err := sleep(ctx, settle); err != nil {
		return nil, err
	}
	w0 := r.snapshot()
	if err := sleep(ctx, o.Duration-settle); err != nil {
		return nil, err
	}
	w1 := r.snapshot()
	if err := writeHeapProfile(o.MemProfile); err != nil {
		o.Logger.Warn().Err(err).Msg("bench: heap profile")
	}
	r.pub.stop()
	_ = sleep(ctx, drainTime)
	stopSampler()
	res := r.summarize(before, w0, w1, smp.samples)
	if res.Connected == 0 {
		return res, fmt.Errorf("%w: %s", ErrNoStudent, firstError(res.Errors))
	}
	return res, nil
}

// joinAll starts one join every 1/JoinRate seconds and returns when every
// join has succeeded or failed (each is bounded by JoinTimeout).
func (r *runner) joinAll(ctx context.Context) {
	o := r.env.opts
	interval := time.Duration(float64(time.Second) / o.JoinRate)
	start := time.Now()
	var wg sync.WaitGroup
	for i, s := range r.students {
		if sleep(ctx, time.Until(start.Add(time.Duration(i)*interval))) != nil {
			s.setErr(ctx.Err())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			jctx, cancel := context.WithTimeout(ctx, o.JoinTimeout)
			defer cancel()
			s.joinAt.Store(r.env.clock.now())
			if err := s.join(jctx); err != nil {
				s.setErr(err)
				return
			}
			s.joined.Store(true)
		}()
	}
	wg.Wait()
}

// waitFirstMedia waits, a bounded time, until every joined student has
// received a keyframe, so the measured period starts with all of them.
func (r *runner) waitFirstMedia(ctx context.Context) {
	deadline := time.Now().Add(firstMediaTimeout)
	for time.Now().Before(deadline) {
		waiting := false
		for _, s := range r.students {
			if s.joined.Load() && s.firstKey.Load() == 0 {
				waiting = true
				break
			}
		}
		if !waiting || sleep(ctx, 20*time.Millisecond) != nil {
			return
		}
	}
}

// leaveAll ends every student's session, a bounded number at a time.
func (r *runner) leaveAll() {
	sem := make(chan struct{}, leaveParallel)
	var wg sync.WaitGroup
	for _, s := range r.students {
		if s.leave == nil || !s.joined.Load() {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
			defer cancel()
			if err := s.leave(ctx); err != nil {
				r.env.log.Debug().Err(err).Int("student", s.n).Msg("bench: leave")
			}
			s.leave = nil
		}()
	}
	wg.Wait()
}

// writeHeapProfile writes a heap profile to path, if there is one.
func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	runtime.GC() // the profile shows live memory as of the last collection
	return writeFile(path, pprof.WriteHeapProfile)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sampler reads the counters once a second for the charts.
type sampler struct {
	r       *runner
	samples []Sample
	last    snap
}

func newSampler(r *runner) *sampler { return &sampler{r: r} }

// start begins sampling; the returned function stops it and waits (it
// may be called more than once). samples is safe to read after it.
func (s *sampler) start() func() {
	s.last = s.r.snapshot()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for range 1 << 30 {
			select {
			case <-stop:
				return
			case <-tick.C:
				s.sample()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(stop) })
		<-done
	}
}
