package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"lectern/sfu"
)

// This node's own claims outlive NATS trouble. The directory may lose
// an entry of a class this node still carries: while this node was cut
// off from NATS alone, the others judged it dead and cleared its entries
// (a class whose teacher still publishes here), or NATS came back
// without its store. And a class that ended during an outage could not be
// released: its entry would stay, refreshed by this very node, until the
// node stopped. So the Directory remembers the classes it claimed for
// itself and those it failed to release, and sets both right once NATS
// answers again: a lost entry is claimed again (never over another live
// origin: a class taken over meanwhile is another node's now), a pending
// release is done.

// own records a class this node claimed for itself.
func (d *Directory) own(room sfu.RoomID) {
	d.mu.Lock()
	d.owned[room] = true
	delete(d.releasing, room)
	d.mu.Unlock()
}

// disown forgets a claim; with pending, the release is to be retried.
func (d *Directory) disown(room sfu.RoomID, pending bool) {
	d.mu.Lock()
	delete(d.owned, room)
	if pending {
		d.releasing[room] = true
	} else {
		delete(d.releasing, room)
	}
	d.mu.Unlock()
}

// maintain runs, every Sweep until Close, the claims' upkeep and, on a
// mirroring node, the watcher check and the sweep. A reconnection runs
// the upkeep at once.
func (d *Directory) maintain() {
	defer d.wg.Done()
	reconnected := d.opts.Conn.StatusChanged(nats.CONNECTED)
	defer d.opts.Conn.RemoveStatusListener(reconnected)
	t := time.NewTicker(d.opts.Sweep)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-reconnected:
			d.mu.Lock()
			d.recheck = true
			d.mu.Unlock()
		case <-t.C:
			if !d.opts.NoMirror {
				d.checkWatcher()
				d.sweep()
			}
		}
		d.upkeep()
	}
}

// upkeep retries pending releases and claims again the classes whose
// entry is gone. A mirroring node compares its claims with the mirror at
// every run; a node without one looks them up after each reconnection.
func (d *Directory) upkeep() {
	if !d.opts.Conn.IsConnected() {
		return
	}
	id, boot := d.self()
	d.mu.Lock()
	recheck := d.recheck
	d.recheck = false
	var release, check []sfu.RoomID
	for room := range d.releasing {
		release = append(release, room)
	}
	for room := range d.owned {
		e, ok := d.entries[room]
		mirrored := ok && e.Origin == id && e.Boot == boot
		if recheck || (!d.opts.NoMirror && d.synced && !mirrored) {
			check = append(check, room)
		}
	}
	d.mu.Unlock()
	for _, room := range release {
		d.retryRelease(room)
	}
	for _, room := range check {
		d.reclaim(room)
	}
}

// retryRelease does a pending release, unless the class was claimed
// again since upkeep listed it (a teacher came back): the release is
// then void, and deleting the entry would drop a live class that upkeep
// would never claim again.
func (d *Directory) retryRelease(room sfu.RoomID) {
	unlock := d.claims.lock(room)
	defer unlock()
	d.mu.Lock()
	pending := d.releasing[room] && !d.owned[room]
	d.mu.Unlock()
	if !pending {
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, checkTimeout)
	defer cancel()
	if err := d.releaseOwn(ctx, room); err == nil {
		d.log.Info().Str("room", string(room)).Msg("cluster: class released once NATS answered")
	}
}

// reclaim claims room again if its entry is gone. Claim never displaces
// a live origin, and takes over a dead one's: this node's teacher
// publishes here. The class's lock keeps a Release from running in
// between the check that the class is still this node's and the claim.
func (d *Directory) reclaim(room sfu.RoomID) {
	unlock := d.claims.lock(room)
	defer unlock()
	d.mu.Lock()
	owned := d.owned[room]
	d.mu.Unlock()
	if !owned {
		return // released since upkeep looked
	}
	ctx, cancel := context.WithTimeout(d.ctx, checkTimeout)
	defer cancel()
	id, boot := d.self()
	cur, err := d.Lookup(ctx, room)
	switch {
	case err == nil && cur.Origin == id && cur.Boot == boot:
		return // the mirror lags; the entry is there
	case err != nil && !errors.Is(err, ErrNoEntry):
		d.retryLater()
		return
	}
	e, err := d.claimOwn(ctx, room)
	switch {
	case err == nil:
		d.log.Warn().Str("room", string(room)).Msg("cluster: the class's entry was lost; claimed again")
	case errors.Is(err, ErrTaken):
		d.disown(room, false)
		d.log.Warn().Str("room", string(room)).Str("origin", string(e.Origin)).
			Msg("cluster: the class was taken over while this node was cut off")
	default:
		d.retryLater()
	}
}

// retryLater has the next upkeep look the claims up again.
func (d *Directory) retryLater() {
	d.mu.Lock()
	d.recheck = true
	d.mu.Unlock()
}

// roomLocks serialise, class by class, what changes this node's claims:
// Claim, Release and the upkeep's retries of both. Each runs under its
// class's lock, held across NATS round trips (each bounded by its
// context), so that a release never deletes a claim made meanwhile and
// upkeep never claims again a class being released. One lock per class:
// a slow directory delays no other class's teacher.
type roomLocks struct {
	mu sync.Mutex // guards m; a leaf, never held while waiting for a class
	m  map[sfu.RoomID]*roomLock
}

// roomLock is one class's lock and how many hold or wait for it.
type roomLock struct {
	mu   sync.Mutex
	refs int
}

// lock takes room's lock; the returned func gives it back.
func (l *roomLocks) lock(room sfu.RoomID) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[sfu.RoomID]*roomLock{}
	}
	rl := l.m[room]
	if rl == nil {
		rl = &roomLock{}
		l.m[room] = rl
	}
	rl.refs++
	l.mu.Unlock()
	rl.mu.Lock()
	return func() {
		rl.mu.Unlock()
		l.mu.Lock()
		if rl.refs--; rl.refs == 0 {
			delete(l.m, room)
		}
		l.mu.Unlock()
	}
}
