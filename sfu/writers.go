package sfu

// Lock order: writerShard.mu is a leaf. It is taken by whoever schedules
// a down track (a track's reader delivering, an RTCP reader queueing a
// NACK, a pacing timer, Close) and by the shard's goroutine taking the
// ready list; nothing is called while it is held.

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// runBudget is how many queue entries a down track writes per turn before
// it goes to the back of its shard's ready list, so one subscriber with a
// long backlog does not delay the others of its shard by more than a few
// hundred microseconds.
const runBudget = 32

// writerPool writes every down track's queue on a few goroutines, one per
// core, instead of one goroutine per down track. A packet fanned out to a
// class of N students then wakes at most one goroutine per core rather than
// N: with one writer per down track the Go scheduler's wake-ups and context
// switches took about 30% of the server's CPU at 100 students. Each down
// track belongs to one shard for its life, so its writes stay on one
// goroutine and in order.
//
// Sharing a goroutine is safe only where a write never waits for one
// subscriber: over UDP a write queues the datagram for the batched sender
// (batch.go). Over ICE-TCP (RFC 6544) a write waits for that student's TCP
// window, so such a down track gets a shard of its own (Engine.shardFor).
type writerPool struct {
	shards []*writerShard
	next   atomic.Uint32
}

// passSender is the shared socket's side of a writer pass (batchConn):
// what the pass writes is held back and sent together when it ends.
type passSender interface {
	hold()
	release()
}

// writerShard is one writing goroutine and the down tracks ready for it.
type writerShard struct {
	out    passSender // nil: the down tracks' writes are not batched
	mu     sync.Mutex
	ready  []*DownTrack
	spare  []*DownTrack
	wake   chan struct{} // capacity 1: a pending wake-up is never lost
	done   chan struct{}
	exited chan struct{}
}

func newWriterShard(out passSender) *writerShard {
	return &writerShard{
		out:  out,
		wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{}),
	}
}

// startWriterShard starts a shard's goroutine; stop ends it.
func startWriterShard(out passSender) *writerShard {
	sh := newWriterShard(out)
	go sh.loop()
	return sh
}

// stop ends the goroutine once it has run what is ready, and waits for it.
func (sh *writerShard) stop() {
	close(sh.done)
	<-sh.exited
}

// newWriterPool starts n writing goroutines, whose passes out sends.
func newWriterPool(n int, out passSender) *writerPool {
	wp := &writerPool{shards: make([]*writerShard, max(n, 1))}
	for i := range wp.shards {
		wp.shards[i] = startWriterShard(out)
	}
	return wp
}

// pick assigns a shard to a new down track, in turn: the students of a
// class spread evenly over the cores.
func (wp *writerPool) pick() *writerShard {
	return wp.shards[int(wp.next.Add(1))%len(wp.shards)]
}

// close stops the goroutines once they have run what is ready. Down
// tracks are stopped (and have released their queues) before the engine
// closes the pool.
func (wp *writerPool) close() {
	for _, sh := range wp.shards {
		sh.stop()
	}
}

// push adds d to the ready list and wakes the goroutine if the list was
// empty (otherwise a wake-up is already pending or the goroutine is
// running and will take the list again before it sleeps).
func (sh *writerShard) push(d *DownTrack) {
	sh.mu.Lock()
	sh.ready = append(sh.ready, d)
	first := len(sh.ready) == 1
	sh.mu.Unlock()
	if first {
		select {
		case sh.wake <- struct{}{}:
		default:
		}
	}
}

func (sh *writerShard) loop() {
	defer close(sh.exited)
	for {
		select {
		case <-sh.wake:
			for sh.runReady() {
			}
		case <-sh.done:
			for sh.runReady() {
			}
			return
		}
	}
}

// runReady runs every down track on the ready list once and reports
// whether there were any. The list is swapped for the spare one under the
// lock and run without it, so schedulers never wait for a write.
func (sh *writerShard) runReady() bool {
	sh.mu.Lock()
	batch := sh.ready
	sh.ready = sh.spare[:0]
	sh.mu.Unlock()
	if len(batch) == 0 {
		sh.spare = batch
		return false
	}
	if sh.out != nil {
		sh.out.hold()
	}
	for i, d := range batch {
		d.run()
		batch[i] = nil
	}
	if sh.out != nil {
		sh.out.release()
	}
	sh.spare = batch
	return true
}

// shardFor picks the writer shard for the down tracks of pc, once it is
// connected: a shared one over UDP, a new one of their own over TCP (own
// is true: the caller stops it after closing the down tracks).
func (e *Engine) shardFor(pc *webrtc.PeerConnection) (sh *writerShard, own bool) {
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err == nil && pair != nil && pair.Local != nil && pair.Local.Protocol == webrtc.ICEProtocolTCP {
		return startWriterShard(nil), true
	}
	return e.writers.pick(), false
}

// setShard gives the down track the shard that writes it, once, when its
// peer connection connects and before its first packet is delivered.
func (d *DownTrack) setShard(sh *writerShard) { d.shard.Store(sh) }

// schedule puts the down track on its shard's ready list unless it is
// already there. Before it has a shard nothing is queued but NACKs, which
// wait for the first turn.
func (d *DownTrack) schedule() {
	sh := d.shard.Load()
	if sh != nil && d.scheduled.CompareAndSwap(false, true) {
		sh.push(d)
	}
}

// run is the down track's turn on its shard's goroutine: it serves NACKs,
// continues a paced priming, then writes up to runBudget queue entries.
// Clearing scheduled first means that anything queued from now on
// schedules the down track again, so nothing waits unnoticed.
func (d *DownTrack) run() {
	d.scheduled.Store(false)
	if d.closed.Load() {
		d.release()
		return
	}
	defer d.flushCounts()
	d.serveNACKs()
	if d.priming != nil && d.continuePrime() {
		return
	}
	for range runBudget {
		select {
		case q := <-d.queue:
			d.writeQueued(q)
			if d.priming != nil {
				return // a GOP started: the pacing timer comes back
			}
		default:
			return
		}
	}
	d.schedule()
}

func (d *DownTrack) serveNACKs() {
	for {
		select {
		case seqs := <-d.nacks:
			d.serveNACK(seqs)
		default:
			return
		}
	}
}

// primeState is a primed GOP being written paced (see primeFirstBurst).
type primeState struct {
	gop     []*Packet // the packets not yet written
	skipped bool
	src     *source
	first   bool      // the first burst, which holds the keyframe
	due     time.Time // when the next burst may go
	timer   *time.Timer
}

// startPrime begins writing a queued GOP: its first bytes, which hold the
// keyframe, at once, the rest at primeRate. A late joiner's GOP holds up
// to seconds of video; sent at once to every student of a join burst it
// overflows the receivers' socket buffers and the queues of the routers
// on their way, and the lost packets come back as NACKs and keyframe
// requests. Live packets wait in the queue behind it.
func (d *DownTrack) startPrime(q queued) {
	pr := d.primer
	if pr == nil {
		pr = &primeState{}
		pr.timer = time.AfterFunc(time.Hour, d.schedule)
		pr.timer.Stop()
		d.primer = pr
	}
	pr.gop, pr.skipped, pr.src, pr.first, pr.due = *q.gop, q.skipped, q.src, true, time.Time{}
	d.priming = pr
	d.continuePrime()
}

// continuePrime writes the next burst of the GOP being primed if it is
// due, and reports whether some of the GOP is left. NACKs are served
// between bursts (run serves them first): packets of the keyframe burst
// lost on the way are worth retransmitting before the rest of the GOP.
func (d *DownTrack) continuePrime() bool {
	pr := d.priming
	now := time.Now()
	if now.Before(pr.due) {
		return true // the timer schedules the down track when it is due
	}
	limit := primeBurst
	if pr.first {
		limit = primeFirstBurst
	}
	burst := 0
	for len(pr.gop) > 0 && burst < limit {
		p := pr.gop[0]
		pr.gop[0] = nil
		pr.gop = pr.gop[1:]
		burst += len(p.payload)
		d.writeQueued(queued{p: p, skipped: pr.skipped, src: pr.src})
		pr.skipped = false
	}
	pr.first = false
	if len(pr.gop) == 0 {
		pr.gop = nil // the emptied slice still holds the GOP's array
		d.priming = nil
		return false
	}
	wait := time.Duration(burst) * 8 * time.Second / primeRate
	pr.due = now.Add(wait)
	pr.timer.Reset(wait)
	return true
}

// release gives back what a stopped down track still holds: its queue and
// the rest of a GOP being primed. It runs on the shard's goroutine.
func (d *DownTrack) release() {
	if pr := d.priming; pr != nil {
		pr.timer.Stop()
		releaseAll(pr.gop)
		pr.gop = nil
		d.priming = nil
	}
	d.drain()
}
