package cluster

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// Registry defaults. A node announces itself every second; one that has
// not been heard for 5 s (five announcements lost) is gone.
const (
	DefaultInterval  = time.Second
	DefaultGoneAfter = 5 * time.Second
	// DefaultReserveWeight is what a class placed on a node counts for,
	// in students, until the node's own announcements show its students:
	// the 30-student class of docs/scaling.md.
	DefaultReserveWeight = 30
	// DefaultReserveFor is the time constant over which a reservation
	// fades: by then the class's students have joined and show in the
	// node's announced load.
	DefaultReserveFor = 10 * time.Second
	// unlimitedCapacity stands for "no limit" in load ratios, so that a
	// node with no --max-students compares by its student count.
	unlimitedCapacity = 1 << 20
)

// Load is a node's live load, announced with every heartbeat.
type Load struct {
	Students   int     `json:"students"`
	Tracks     int     `json:"tracks"`
	Classes    int     `json:"classes"`     // classes it is the origin of
	CPU        float64 `json:"cpu"`         // busy fraction of all cores, 0 to 1
	BitrateOut int64   `json:"bitrate_out"` // bits per second sent to clients and relays
	// Draining: the node takes no new classes or students before it
	// stops (`lectern drain`); it counts as full.
	Draining bool `json:"draining,omitempty"`
}

// NodeInfo is what a node announces about itself.
type NodeInfo struct {
	ID        NodeID    `json:"id"`
	Boot      string    `json:"boot"`       // random per process start
	URL       string    `json:"url"`        // public HTTP base URL, for redirects
	MediaAddr string    `json:"media_addr"` // host:port of its ICE UDP port, for relays
	Capacity  int       `json:"capacity"`   // students it takes; 0: no limit
	Load      Load      `json:"load"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Leaving   bool      `json:"leaving,omitempty"` // its last announcement: shutting down
}

// NodeStatus is a node as this node last heard of it.
type NodeStatus struct {
	NodeInfo
	LastSeen time.Time `json:"last_seen"`
	Self     bool      `json:"self"`
}

// Full reports whether the node takes no more students (nor classes).
func (n NodeStatus) Full() bool {
	return n.Load.Draining || n.Capacity > 0 && n.Load.Students >= n.Capacity
}

// Liveness is what this node can say about another node.
type Liveness int

const (
	// Unknown: not heard of lately, but this node cannot judge (it has
	// just started or reconnected, or it is cut off from NATS itself).
	Unknown Liveness = iota
	// Alive: announced within GoneAfter.
	Alive
	// Dead: silent for GoneAfter while this node heard its own
	// announcements, said it was leaving, or restarted with a new boot.
	Dead
)

func (l Liveness) String() string {
	switch l {
	case Alive:
		return "alive"
	case Dead:
		return "dead"
	default:
		return "unknown"
	}
}

// RegistryOptions configure a Registry. Conn, Self.ID and Load are required.
type RegistryOptions struct {
	Conn *nats.Conn
	// Self is this node's identity; ID, Boot, StartedAt and Load are
	// filled in by the Registry when empty.
	Self NodeInfo
	// Load reports the node's live load; it is called once per announcement.
	Load func() Load
	// Interval between announcements (DefaultInterval).
	Interval time.Duration
	// GoneAfter is the silence after which a node is gone (DefaultGoneAfter).
	GoneAfter time.Duration
	// ReserveWeight and ReserveFor shape placement (DefaultReserveWeight,
	// DefaultReserveFor).
	ReserveWeight float64
	ReserveFor    time.Duration
	Logger        zerolog.Logger
}

// peer is one node as heard.
type peer struct {
	info     NodeInfo
	lastSeen time.Time
}

// reservation is the student-equivalents this node placed on another
// lately, fading.
type reservation struct {
	amount float64
	at     time.Time // when amount was last brought up to date
}

// Registry announces this node and keeps the last word of every other.
//
// Judging death needs care: during a NATS outage every other node falls
// silent, and so does this one. A node is judged dead only while this node
// has heard its own announcements without a gap for at least GoneAfter;
// otherwise it is Unknown, and nothing is taken over.
type Registry struct {
	opts RegistryOptions
	nc   *nats.Conn
	log  zerolog.Logger
	sub  *nats.Subscription
	stop chan struct{}
	done chan struct{}

	mu          sync.Mutex // guards everything below
	self        NodeInfo
	peers       map[NodeID]*peer
	reserved    map[NodeID]reservation
	selfSeen    time.Time // last own announcement heard back
	streakStart time.Time // since when own announcements came without a gap
	closed      bool
}

// NewRegistry subscribes to announcements and starts announcing.
func NewRegistry(opts RegistryOptions) (*Registry, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	r := &Registry{
		opts: opts, nc: opts.Conn, self: opts.Self,
		log:   opts.Logger.With().Str("component", "cluster").Str("node", string(opts.Self.ID)).Logger(),
		peers: map[NodeID]*peer{}, reserved: map[NodeID]reservation{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	sub, err := r.nc.Subscribe(nodesPrefix+"*", r.receive)
	if err != nil {
		return nil, fmt.Errorf("%w: subscribe: %v", ErrUnavailable, err)
	}
	r.sub = sub
	go r.loop()
	return r, nil
}

func (o *RegistryOptions) defaults() error {
	if o.Conn == nil || o.Load == nil {
		return fmt.Errorf("%w: registry needs Conn and Load", ErrInvalid)
	}
	if !o.Self.ID.Valid() {
		return fmt.Errorf("%w: node id %q", ErrInvalid, o.Self.ID)
	}
	if o.Self.Boot == "" {
		o.Self.Boot = newBoot()
	}
	if o.Self.StartedAt.IsZero() {
		o.Self.StartedAt = time.Now().UTC()
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.GoneAfter <= 0 {
		o.GoneAfter = DefaultGoneAfter
	}
	if o.GoneAfter < 2*o.Interval {
		return fmt.Errorf("%w: GoneAfter %v must be at least two intervals (%v)", ErrInvalid, o.GoneAfter, o.Interval)
	}
	if o.ReserveWeight <= 0 {
		o.ReserveWeight = DefaultReserveWeight
	}
	if o.ReserveFor <= 0 {
		o.ReserveFor = DefaultReserveFor
	}
	return nil
}

// loop announces at once, then every Interval, until Close.
func (r *Registry) loop() {
	defer close(r.done)
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		r.announce(false)
		select {
		case <-t.C:
		case <-r.stop:
			return
		}
	}
}

// announce publishes this node's info with fresh load. While NATS is
// away nothing is published: a burst of stale announcements buffered
// during the outage would tell nobody anything.
func (r *Registry) announce(leaving bool) {
	load := r.opts.Load()
	r.mu.Lock()
	r.self.Load = load
	r.self.Leaving = leaving
	info := r.self
	r.mu.Unlock()
	if !r.nc.IsConnected() {
		return
	}
	b, err := json.Marshal(info)
	if err != nil {
		r.log.Error().Err(err).Msg("cluster: encode announcement")
		return
	}
	if err := r.nc.Publish(announceSubject(info.ID), b); err != nil {
		r.log.Debug().Err(err).Msg("cluster: announce")
	}
}

// receive records one announcement (nats.go calls it serially).
func (r *Registry) receive(m *nats.Msg) {
	var info NodeInfo
	if err := json.Unmarshal(m.Data, &info); err != nil || !info.ID.Valid() ||
		announceSubject(info.ID) != m.Subject {
		r.log.Warn().Str("subject", m.Subject).Msg("cluster: malformed announcement ignored")
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if info.ID == r.self.ID {
		r.receiveSelf(info, now)
		return
	}
	p := r.peers[info.ID]
	if p == nil {
		p = &peer{}
		r.peers[info.ID] = p
		r.log.Info().Str("peer", string(info.ID)).Str("url", info.URL).Msg("cluster: node joined")
	} else if p.info.Boot != info.Boot && !info.Leaving {
		r.log.Info().Str("peer", string(info.ID)).Msg("cluster: node restarted")
	}
	p.info, p.lastSeen = info, now
	if info.Leaving {
		r.log.Info().Str("peer", string(info.ID)).Msg("cluster: node leaving")
	}
}

// receiveSelf tracks the unbroken run of this node's own announcements,
// and complains about another process using this node's id.
func (r *Registry) receiveSelf(info NodeInfo, now time.Time) {
	if info.Boot != r.self.Boot {
		r.log.Error().Msg("cluster: another node announces this node's id: give every node its own --node-id")
		return
	}
	if r.selfSeen.IsZero() || now.Sub(r.selfSeen) > 2*r.opts.Interval {
		r.streakStart = now
	}
	r.selfSeen = now
}

// judgeableLocked reports whether silence means death right now.
func (r *Registry) judgeableLocked(now time.Time) bool {
	return !r.selfSeen.IsZero() && now.Sub(r.selfSeen) <= 2*r.opts.Interval &&
		now.Sub(r.streakStart) >= r.opts.GoneAfter
}

// Liveness says whether the node id, in its incarnation boot, is alive.
// An empty boot matches any incarnation.
func (r *Registry) Liveness(id NodeID, boot string) Liveness {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == r.self.ID {
		if boot == "" || boot == r.self.Boot {
			return Alive
		}
		return Dead // an earlier life of this very node
	}
	p := r.peers[id]
	switch {
	case p != nil && boot != "" && p.info.Boot != boot:
		return Dead // restarted since: the claim belonged to its former life
	case p != nil && p.info.Leaving:
		return Dead
	case p != nil && now.Sub(p.lastSeen) <= r.opts.GoneAfter:
		return Alive
	case r.judgeableLocked(now):
		return Dead
	default:
		return Unknown
	}
}

// Self is this node's latest announcement.
func (r *Registry) Self() NodeInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.self
}

// Node is the last word of one live node.
func (r *Registry) Node(id NodeID) (NodeStatus, bool) {
	for _, n := range r.Nodes() {
		if n.ID == id {
			return n, true
		}
	}
	return NodeStatus{}, false
}

// Nodes lists the live nodes, this one included, by id. A node leaves the
// list GoneAfter after its last announcement, or at once when it said it
// was leaving.
func (r *Registry) Nodes() []NodeStatus {
	now := time.Now()
	r.mu.Lock()
	out := []NodeStatus{{NodeInfo: r.self, LastSeen: now, Self: true}}
	for id, p := range r.peers {
		switch {
		case p.info.Leaving:
		case now.Sub(p.lastSeen) <= r.opts.GoneAfter:
			out = append(out, NodeStatus{NodeInfo: p.info, LastSeen: p.lastSeen})
		case now.Sub(p.lastSeen) > 10*r.opts.GoneAfter:
			delete(r.peers, id) // forget long-gone nodes; a late claim of theirs is Unknown, then Dead
		}
	}
	for id, res := range r.reserved {
		if res.fade(now, r.opts.ReserveFor) < 0.01 {
			delete(r.reserved, id)
		}
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// LeastLoaded is the live node, not full, with the lowest load: students
// over capacity, counting the classes this node placed there lately
// (their students have not shown in its announcements yet). Ties, as among
// idle nodes, go by rendezvous hash of key (a class id), so that placers
// with the same view do not all pick the same node. false: every node is
// full.
func (r *Registry) LeastLoaded(key string) (NodeStatus, bool) {
	nodes := r.Nodes()
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var best NodeStatus
	bestScore, bestHash, found := math.Inf(1), uint64(0), false
	for _, n := range nodes {
		if n.Full() {
			continue
		}
		score := r.scoreLocked(n, now)
		h := rendezvous(key, n.ID)
		if !found || score < bestScore || (score == bestScore && h > bestHash) {
			best, bestScore, bestHash, found = n, score, h, true
		}
	}
	return best, found
}

// scoreLocked is a node's load ratio with this node's reservations.
func (r *Registry) scoreLocked(n NodeStatus, now time.Time) float64 {
	students := float64(n.Load.Students) + r.reserved[n.ID].fade(now, r.opts.ReserveFor)
	capacity := float64(n.Capacity)
	if n.Capacity <= 0 {
		capacity = unlimitedCapacity
	}
	return students / capacity
}

// reserve counts a class just placed on id until its students show.
func (r *Registry) reserve(id NodeID) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.reserved[id]
	r.reserved[id] = reservation{amount: res.fade(now, r.opts.ReserveFor) + r.opts.ReserveWeight, at: now}
}

// fade is the reservation decayed exponentially with time constant tau.
func (res reservation) fade(now time.Time, tau time.Duration) float64 {
	if res.amount == 0 {
		return 0
	}
	return res.amount * math.Exp(-float64(now.Sub(res.at))/float64(tau))
}

// rendezvous is the highest-random-weight hash of (key, node).
func rendezvous(key string, id NodeID) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// Close announces that this node is leaving (others drop it at once
// rather than after GoneAfter) and stops. Further calls do nothing.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	r.announce(true)
	err := r.sub.Unsubscribe()
	if err != nil && r.nc.IsClosed() {
		err = nil // the connection went first: nothing left to undo
	}
	return err
}
