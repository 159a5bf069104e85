package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"lectern/sfu"
)

// jsReplicasNotSupported is nats-server's error code for replicas > 1 on
// a JetStream that is not clustered.
const jsReplicasNotSupported jetstream.ErrorCode = 10074

// retryPause is the wait between attempts to reach JetStream.
const retryPause = 250 * time.Millisecond

// checkTimeout bounds checkWatcher's request for the bucket's state.
const checkTimeout = 2 * time.Second

// openBucket binds to the directory's bucket, creating it when missing,
// and retries until ctx ends (a forming cluster has no JetStream leader).
func openBucket(ctx context.Context, js jetstream.JetStream, opts DirectoryOptions, log zerolog.Logger) (jetstream.KeyValue, error) {
	for {
		kv, err := js.KeyValue(ctx, opts.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = createBucket(ctx, js, opts, log)
		}
		if err == nil {
			return kv, nil
		}
		log.Debug().Err(err).Msg("cluster: directory bucket not ready")
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: directory bucket %q: %v", ErrUnavailable, opts.Bucket, err)
		case <-time.After(retryPause):
		}
	}
}

// createBucket makes the bucket. With Replicas 0 it asks for three
// replicas, so the directory survives the loss of any one NATS server,
// and settles for one on a JetStream that is not clustered.
func createBucket(ctx context.Context, js jetstream.JetStream, opts DirectoryOptions, log zerolog.Logger) (jetstream.KeyValue, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:      opts.Bucket,
		Description: "Lectern class directory: class -> origin node",
		History:     1,
		TTL:         opts.TTL,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 3
	}
	kv, err := js.CreateKeyValue(ctx, cfg)
	var apiErr *jetstream.APIError
	if opts.Replicas == 0 && errors.As(err, &apiErr) && apiErr.ErrorCode == jsReplicasNotSupported {
		cfg.Replicas = 1
		kv, err = js.CreateKeyValue(ctx, cfg)
	}
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, opts.Bucket) // another node was first
	}
	if err == nil {
		log.Info().Str("bucket", opts.Bucket).Int("replicas", cfg.Replicas).Msg("cluster: directory bucket created")
	}
	return kv, err
}

// watchState is what the running watcher delivered, and what the last
// checkWatcher found.
type watchState struct {
	running   bool
	rev       uint64 // highest revision delivered
	delivered uint64 // updates delivered
	// behind: at the last check the bucket held a revision past rev,
	// and delivered was seen.
	behind bool
	seen   uint64
}

// watch keeps the mirror in step with the bucket until Close, starting
// again whenever the watcher ends, after every reconnection, and when
// checkWatcher finds it stalled: the consumer behind a watcher may not
// have survived a NATS restart or the death of the NATS server it lived
// on, and nats.go would only notice after missed heartbeats.
func (d *Directory) watch() {
	defer d.wg.Done()
	reconnected := d.opts.Conn.StatusChanged(nats.CONNECTED)
	defer d.opts.Conn.RemoveStatusListener(reconnected)
	for d.ctx.Err() == nil {
		select {
		case <-d.restart: // about a watcher that is gone already
		default:
		}
		w, err := d.kv.WatchAll(d.ctx)
		if err != nil {
			d.log.Debug().Err(err).Msg("cluster: directory watch")
			select {
			case <-d.ctx.Done():
			case <-time.After(retryPause):
			}
			continue
		}
		d.setRunning(true)
		d.consume(w, reconnected)
		d.setRunning(false)
		stopWatcher(w)
	}
}

// setRunning starts or ends the record of one watcher.
func (d *Directory) setRunning(running bool) {
	d.mu.Lock()
	d.cur = watchState{running: running}
	d.mu.Unlock()
}

// delivered records one update of the running watcher.
func (d *Directory) delivered(rev uint64) {
	d.mu.Lock()
	d.cur.delivered++
	d.cur.rev = max(d.cur.rev, rev)
	d.mu.Unlock()
}

// checkWatcher replaces the watcher when it has stalled.
//
// A watcher is an ordered consumer of the bucket's stream, and such a
// consumer lives on one NATS server, any of the stream's (it has one
// replica). When that server dies and this node's own connection stays
// up, only the consumer's idle heartbeats can tell: nats.go checks them
// every 10 s (twice their 5 s interval) and then recreates the consumer,
// so the mirror lagged the bucket for 10 to 20 s, longer when the first
// attempt failed. The stream knows its last revision: a watcher that is
// behind it at two checks in a row, having delivered nothing in between,
// is stalled, and a new watcher replays the bucket. A watcher that is
// slow but delivering (a long replay) is left alone.
func (d *Directory) checkWatcher() {
	ctx, cancel := context.WithTimeout(d.ctx, checkTimeout)
	defer cancel()
	last, err := d.lastRevision(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		d.recreateBucket(ctx)
		return
	}
	if err != nil {
		return // NATS away: the reconnection restarts the watcher
	}
	d.mu.Lock()
	c := &d.cur
	behind := c.running && last > c.rev
	stalled := behind && c.behind && c.delivered == c.seen
	c.behind, c.seen = behind, c.delivered
	rev := c.rev
	d.mu.Unlock()
	if !stalled {
		return
	}
	d.log.Warn().Uint64("mirrored", rev).Uint64("bucket", last).Msg("cluster: directory watcher stalled; watching again")
	select {
	case d.restart <- struct{}{}:
	default:
	}
}

// recreateBucket makes the bucket again when NATS came back without it
// (a server restarted without its store). The watcher resumes on it by
// itself, its replay empties the mirror, and the upkeep of claims writes
// this node's classes again.
func (d *Directory) recreateBucket(ctx context.Context) {
	d.log.Warn().Str("bucket", d.opts.Bucket).Msg("cluster: directory bucket gone; creating it again")
	if _, err := createBucket(ctx, d.js, d.opts, d.log); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
		d.log.Warn().Err(err).Msg("cluster: directory bucket not created")
	}
}

// lastRevision is the bucket's latest revision, 0 when it holds no
// entry. Only MaxAge removes a latest revision, and it removes the oldest
// first: while the bucket holds anything, its last revision is there for
// the watcher to deliver.
func (d *Directory) lastRevision(ctx context.Context) (uint64, error) {
	st, err := d.kv.Status(ctx)
	if err != nil {
		return 0, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0, fmt.Errorf("%w: bucket status of type %T", ErrInvalid, st)
	}
	state := bs.StreamInfo().State
	if state.Msgs == 0 {
		return 0, nil
	}
	return state.LastSeq, nil
}

// stopWatcher stops w and drains its channel until nats.go closes it:
// its callback blocks while the channel is full, and would otherwise
// never return.
func stopWatcher(w jetstream.KeyWatcher) {
	_ = w.Stop()
	timeout := time.After(2 * time.Second)
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-timeout:
			return
		}
	}
}

// consume applies one watcher's updates until it ends, the connection
// comes back from an outage, checkWatcher finds it stalled, or Close. The watcher first replays every
// entry, then a nil; entries of the mirror it did not replay are gone.
func (d *Directory) consume(w jetstream.KeyWatcher, reconnected <-chan nats.Status) {
	seen := map[sfu.RoomID]bool{}
	initial := true
	for {
		var kve jetstream.KeyValueEntry
		var ok bool
		select {
		case <-d.ctx.Done():
			return
		case <-reconnected:
			return
		case <-d.restart:
			return
		case kve, ok = <-w.Updates():
		}
		switch {
		case !ok:
			return
		case kve == nil:
			initial = false
			d.dropUnseen(seen)
		default:
			d.delivered(kve.Revision())
			room := d.apply(kve)
			if initial && room != "" {
				seen[room] = true
			}
		}
	}
}

// apply records one update in the mirror and tells the watchers.
func (d *Directory) apply(kve jetstream.KeyValueEntry) sfu.RoomID {
	room, err := tokenRoom(kve.Key())
	if err != nil {
		return ""
	}
	var ch Change
	if kve.Operation() == jetstream.KeyValuePut {
		e, err := decodeEntry(room, kve)
		if err != nil {
			d.log.Warn().Err(err).Msg("cluster: directory entry ignored")
			return ""
		}
		ch.Entry = e
		d.mu.Lock()
		if old, ok := d.entries[room]; !ok || old.Revision <= e.Revision {
			d.entries[room] = e
		}
		d.mu.Unlock()
	} else {
		d.mu.Lock()
		ch = Change{Entry: d.entries[room], Deleted: true}
		ch.Entry.Room = room
		delete(d.entries, room)
		delete(d.deadSeen, room)
		d.mu.Unlock()
	}
	d.notify(ch)
	return room
}

// dropUnseen ends the initial replay: the mirror forgets what the bucket
// no longer holds (changes missed while the watcher was down).
func (d *Directory) dropUnseen(seen map[sfu.RoomID]bool) {
	var gone []Change
	d.mu.Lock()
	for room, e := range d.entries {
		if !seen[room] {
			delete(d.entries, room)
			gone = append(gone, Change{Entry: e, Deleted: true})
		}
	}
	d.synced = true
	d.mu.Unlock()
	for _, ch := range gone {
		d.notify(ch)
	}
}

func (d *Directory) notify(ch Change) {
	d.mu.Lock()
	fns := make([]func(Change), 0, len(d.watchers))
	for _, fn := range d.watchers {
		fns = append(fns, fn)
	}
	d.mu.Unlock()
	for _, fn := range fns {
		fn(ch)
	}
}

// sweep refreshes this node's entries before the bucket's TTL, and clears
// entries whose origin is dead. Any node may clear one (the delete is a
// compare-and-set on the revision it read), but to spare NATS a stampede
// the live node with the lowest id does it; the others step in when an
// entry stays dead three times GoneAfter.
func (d *Directory) sweep() {
	if !d.Synced() {
		return
	}
	id, boot := d.self()
	janitor := d.reg.Nodes()[0].ID == id
	now := time.Now()
	for _, e := range d.Entries() {
		if d.ctx.Err() != nil {
			return
		}
		if e.Origin == id && e.Boot == boot {
			if now.Sub(e.written) > d.opts.TTL/2 {
				d.refresh(e)
			}
			continue
		}
		if d.reg.Liveness(e.Origin, e.Boot) != Dead {
			d.mu.Lock()
			delete(d.deadSeen, e.Room)
			d.mu.Unlock()
			continue
		}
		if janitor || d.deadFor(e.Room, now) > 3*d.reg.opts.GoneAfter {
			d.clear(e)
		}
	}
}

// deadFor is how long the sweep has seen room's origin dead.
func (d *Directory) deadFor(room sfu.RoomID, now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	first, ok := d.deadSeen[room]
	if !ok {
		d.deadSeen[room] = now
		return 0
	}
	return now.Sub(first)
}

// refresh rewrites this node's entry, unchanged, so its age restarts.
func (d *Directory) refresh(e Entry) {
	val, _ := json.Marshal(entryValue{Origin: e.Origin, Boot: e.Boot, Since: e.Since})
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	if _, err := d.kv.Update(ctx, roomToken(e.Room), val, e.Revision); err != nil {
		d.log.Debug().Err(err).Str("room", string(e.Room)).Msg("cluster: directory refresh")
	}
}

// clear deletes a dead origin's entry if it is unchanged since read.
func (d *Directory) clear(e Entry) {
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	err := d.kv.Delete(ctx, roomToken(e.Room), jetstream.LastRevision(e.Revision))
	switch {
	case err == nil:
		d.log.Info().Str("room", string(e.Room)).Str("dead_origin", string(e.Origin)).
			Msg("cluster: class of a dead origin cleared")
		d.forget(e.Room, e.Revision)
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		// Taken over or cleared by another node meanwhile: nothing to do.
	default:
		d.log.Debug().Err(err).Str("room", string(e.Room)).Msg("cluster: directory clear")
	}
}
