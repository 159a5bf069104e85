package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"lectern/sfu"
)

// Directory defaults.
const (
	// DefaultBucket is the JetStream key-value bucket of the directory.
	DefaultBucket = "lectern-rooms"
	// DefaultTTL is the bucket's MaxAge: a safety net that clears entries
	// nobody cleaned up (the whole service stopped at once). Origins
	// rewrite their entries after half of it, so a live class never expires.
	DefaultTTL = 12 * time.Hour
	// DefaultSweep is how often the directory's upkeep runs: the check
	// of the watcher, the sweep of dead origins' entries and the upkeep
	// of this node's own claims.
	DefaultSweep = 2 * time.Second
	// maxClaimAttempts bounds one claim's compare-and-set retries; each
	// retry follows a change by another node, so a few are plenty.
	maxClaimAttempts = 8
)

// Entry is one class in the directory: its origin, where its teacher
// publishes. Revision is the KV revision of the entry; (Origin, Boot) is
// the claim itself (a refresh changes Revision, not the claim).
type Entry struct {
	Room     sfu.RoomID `json:"room"`
	Origin   NodeID     `json:"origin"`
	Boot     string     `json:"boot"`
	Since    time.Time  `json:"since"`
	Revision uint64     `json:"revision"`
	written  time.Time  // when this revision was written (refresh)
}

// entryValue is what the KV stores: the room is the key.
type entryValue struct {
	Origin NodeID    `json:"origin"`
	Boot   string    `json:"boot"`
	Since  time.Time `json:"since"`
}

// Change is one directory update seen by the watcher.
type Change struct {
	Entry   Entry
	Deleted bool // the class ended or its origin's entry was cleared
}

// DirectoryOptions configure a Directory. Conn and Registry are required.
type DirectoryOptions struct {
	Conn     *nats.Conn
	Registry *Registry
	// Bucket names the KV bucket (DefaultBucket).
	Bucket string
	// Replicas of the bucket's stream: 0 picks 3 on a clustered
	// JetStream and 1 on a single server (docs/scaling.md).
	Replicas int
	// TTL is the bucket's MaxAge (DefaultTTL).
	TTL time.Duration
	// Sweep is how often the upkeep runs (DefaultSweep).
	Sweep time.Duration
	// NoMirror skips the in-memory mirror, and with it Entries, Watch, the
	// sweep, the refresh of this node's entries before TTL and the
	// recreation of a lost bucket; this node's claims are then checked
	// after each reconnection only. Every directory change reaches every
	// mirroring node, so a large fleet mirrors on a few nodes only
	// (docs/scaling.md).
	NoMirror bool
	Logger   zerolog.Logger
}

// Directory maps classes to their origin nodes in a JetStream KV bucket.
// Every write is a compare-and-set: Create expects no entry (revision 0),
// Update and Delete expect the revision read, so two nodes can never both
// become a class's origin. A watcher mirrors the bucket in memory for
// Entries, Watch and the sweep that clears entries of dead origins.
type Directory struct {
	opts DirectoryOptions
	reg  *Registry
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	log  zerolog.Logger
	ctx  context.Context // ends at Close
	stop context.CancelFunc
	wg   sync.WaitGroup

	// restart asks the watch loop to replace a stalled watcher.
	restart chan struct{}
	// claims serialise, class by class, Claim, Release and the upkeep of
	// this node's claims (claims.go). A class's lock is held across NATS
	// round trips and taken before mu, never after.
	claims roomLocks

	mu       sync.Mutex // guards everything below
	entries  map[sfu.RoomID]Entry
	synced   bool                     // the watcher delivered every initial value
	deadSeen map[sfu.RoomID]time.Time // when the sweep first found an entry's origin dead
	watchers map[int]func(Change)
	nextW    int
	cur      watchState          // the running watcher, for checkWatcher
	owned    map[sfu.RoomID]bool // classes this node claimed for itself
	// releasing are releases that failed for want of NATS, retried.
	releasing map[sfu.RoomID]bool
	recheck   bool // the next upkeep looks every claim up
}

// NewDirectory binds to the bucket, creating it if needed, and starts the
// watcher and the sweep. It waits for JetStream until ctx ends: on a NATS
// cluster that is still forming, there is no JetStream leader yet.
func NewDirectory(ctx context.Context, opts DirectoryOptions) (*Directory, error) {
	if opts.Conn == nil || opts.Registry == nil {
		return nil, fmt.Errorf("%w: directory needs Conn and Registry", ErrInvalid)
	}
	if opts.Bucket == "" {
		opts.Bucket = DefaultBucket
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Sweep <= 0 {
		opts.Sweep = DefaultSweep
	}
	d := &Directory{
		opts: opts, reg: opts.Registry,
		log:      opts.Logger.With().Str("component", "cluster").Str("node", string(opts.Registry.Self().ID)).Logger(),
		entries:  map[sfu.RoomID]Entry{},
		deadSeen: map[sfu.RoomID]time.Time{},
		watchers: map[int]func(Change){},
		restart:  make(chan struct{}, 1),
		owned:    map[sfu.RoomID]bool{}, releasing: map[sfu.RoomID]bool{},
	}
	js, err := jetstream.New(opts.Conn)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	d.js = js
	if d.kv, err = openBucket(ctx, js, opts, d.log); err != nil {
		return nil, err
	}
	d.ctx, d.stop = context.WithCancel(context.Background())
	d.wg.Add(1)
	go d.maintain()
	if !opts.NoMirror {
		d.wg.Add(1)
		go d.watch()
	}
	return d, nil
}

// GoneAfter is the registry's GoneAfter (RegistryOptions): the silence
// after which this node judges another dead, and so may take its classes
// over.
func (d *Directory) GoneAfter() time.Duration { return d.reg.opts.GoneAfter }

// self is this node's claim identity.
func (d *Directory) self() (NodeID, string) {
	s := d.reg.Self()
	return s.ID, s.Boot
}

// Claim makes this node the class's origin: at once when the class has
// none, by takeover when its origin is dead. It returns the entry and
// nil when this node holds the class (also when it already did), or the
// other origin's entry and ErrTaken.
func (d *Directory) Claim(ctx context.Context, room sfu.RoomID) (Entry, error) {
	unlock := d.claims.lock(room)
	defer unlock()
	return d.claimOwn(ctx, room)
}

// claimOwn claims room for this node and records the claim; the caller
// holds the class's lock.
func (d *Directory) claimOwn(ctx context.Context, room sfu.RoomID) (Entry, error) {
	id, boot := d.self()
	e, err := d.claim(ctx, room, id, boot)
	if err == nil {
		d.own(room)
	}
	return e, err
}

// claim writes origin into the class's entry by compare-and-set.
func (d *Directory) claim(ctx context.Context, room sfu.RoomID, origin NodeID, boot string) (Entry, error) {
	if err := checkRoom(room); err != nil {
		return Entry{}, err
	}
	key := roomToken(room)
	want := entryValue{Origin: origin, Boot: boot, Since: time.Now().UTC()}
	val, err := json.Marshal(want)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for range maxClaimAttempts {
		rev, err := d.kv.Create(ctx, key, val)
		if err == nil {
			return d.claimed(room, want, rev), nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return Entry{}, kvError(err)
		}
		cur, err := d.Lookup(ctx, room)
		switch {
		case errors.Is(err, ErrNoEntry):
			continue // released between our Create and Get: try again
		case err != nil:
			return Entry{}, err
		case cur.Origin == origin && cur.Boot == boot:
			return cur, nil
		case d.reg.Liveness(cur.Origin, cur.Boot) != Dead:
			return cur, ErrTaken
		}
		rev, err = d.kv.Update(ctx, key, val, cur.Revision)
		if err == nil {
			d.log.Info().Str("room", string(room)).Str("dead_origin", string(cur.Origin)).
				Str("origin", string(origin)).Msg("cluster: class taken over")
			return d.claimed(room, want, rev), nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return Entry{}, kvError(err)
		}
	}
	return Entry{}, ErrContention
}

// claimed records a won claim in the mirror at once, so that Entries is
// up to date without waiting for the watcher.
func (d *Directory) claimed(room sfu.RoomID, v entryValue, rev uint64) Entry {
	e := Entry{Room: room, Origin: v.Origin, Boot: v.Boot, Since: v.Since, Revision: rev, written: time.Now()}
	if d.opts.NoMirror {
		return e
	}
	d.mu.Lock()
	if old, ok := d.entries[room]; !ok || old.Revision < rev {
		d.entries[room] = e
	}
	d.mu.Unlock()
	return e
}

// Lookup reads the class's entry from the bucket (not the mirror): the
// authoritative answer. ErrNoEntry when the class has no origin.
func (d *Directory) Lookup(ctx context.Context, room sfu.RoomID) (Entry, error) {
	if err := checkRoom(room); err != nil {
		return Entry{}, err
	}
	kve, err := d.kv.Get(ctx, roomToken(room))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Entry{}, ErrNoEntry
	}
	if err != nil {
		return Entry{}, kvError(err)
	}
	return decodeEntry(room, kve)
}

func decodeEntry(room sfu.RoomID, kve jetstream.KeyValueEntry) (Entry, error) {
	var v entryValue
	if err := json.Unmarshal(kve.Value(), &v); err != nil || !v.Origin.Valid() {
		return Entry{}, fmt.Errorf("%w: directory entry of %q is malformed", ErrInvalid, room)
	}
	return Entry{Room: room, Origin: v.Origin, Boot: v.Boot, Since: v.Since,
		Revision: kve.Revision(), written: kve.Created()}, nil
}

// Release removes the class's entry if this node is still its origin (the
// class ended). ErrNotOwner when another node holds it, nil when the
// class has no entry. When NATS does not answer (ErrUnavailable), the
// Directory releases the class itself once NATS is back, unless this
// node claims it again first.
func (d *Directory) Release(ctx context.Context, room sfu.RoomID) error {
	unlock := d.claims.lock(room)
	defer unlock()
	return d.releaseOwn(ctx, room)
}

// releaseOwn releases room and forgets the claim, keeping the release
// pending when NATS does not answer; the caller holds the class's lock.
func (d *Directory) releaseOwn(ctx context.Context, room sfu.RoomID) error {
	err := d.release(ctx, room)
	d.disown(room, errors.Is(err, ErrUnavailable))
	return err
}

func (d *Directory) release(ctx context.Context, room sfu.RoomID) error {
	id, boot := d.self()
	for range maxClaimAttempts {
		cur, err := d.Lookup(ctx, room)
		if errors.Is(err, ErrNoEntry) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.Origin != id || cur.Boot != boot {
			return ErrNotOwner
		}
		err = d.kv.Delete(ctx, roomToken(room), jetstream.LastRevision(cur.Revision))
		if err == nil {
			d.forget(room, cur.Revision)
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return kvError(err)
		}
	}
	return ErrContention
}

// forget drops the class from the mirror if it still holds revision rev.
func (d *Directory) forget(room sfu.RoomID, rev uint64) {
	d.mu.Lock()
	if e, ok := d.entries[room]; ok && e.Revision <= rev {
		delete(d.entries, room)
	}
	d.mu.Unlock()
}

// Place finds the class's origin, choosing one if it has none: the
// existing origin while it is not dead, otherwise the least-loaded live
// node, written into the directory by compare-and-set on that node's
// behalf. Placement is race-free: of any number of concurrent Place and
// Claim calls, exactly one write wins and every caller gets its entry.
func (d *Directory) Place(ctx context.Context, room sfu.RoomID) (Entry, error) {
	cur, err := d.Lookup(ctx, room)
	switch {
	case err == nil && d.reg.Liveness(cur.Origin, cur.Boot) != Dead:
		return cur, nil
	case err != nil && !errors.Is(err, ErrNoEntry):
		return Entry{}, err
	}
	target, ok := d.reg.LeastLoaded(string(room))
	if !ok {
		return Entry{}, ErrNoNode
	}
	e, err := d.claim(ctx, room, target.ID, target.Boot)
	if errors.Is(err, ErrTaken) {
		return e, nil // another placement won: its choice stands
	}
	if err == nil && e.Origin == target.ID {
		d.reg.reserve(target.ID)
	}
	return e, err
}

// kvError maps JetStream's failures to ErrUnavailable, keeping the cause.
func kvError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// Entries is the mirror's view of the whole directory, for operators
// (GET /api/rooms). It may lag the bucket by the watcher's delay.
func (d *Directory) Entries() []Entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Entry, 0, len(d.entries))
	for _, e := range d.entries {
		out = append(out, e)
	}
	return out
}

// Synced reports whether the mirror has loaded the whole bucket once.
func (d *Directory) Synced() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.synced
}

// Watch calls fn with every change the watcher sees, from the watcher's
// goroutine (fn must not block). The returned func stops the calls.
func (d *Directory) Watch(fn func(Change)) (cancel func()) {
	d.mu.Lock()
	id := d.nextW
	d.nextW++
	d.watchers[id] = fn
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		delete(d.watchers, id)
		d.mu.Unlock()
	}
}

// Close stops the watcher, the sweep and the upkeep of claims; the
// bucket and this node's entries stay (Release them first when the
// classes end).
func (d *Directory) Close() error {
	d.stop()
	d.wg.Wait()
	return nil
}
