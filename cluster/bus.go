package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"lectern/sfu"
)

// Message headers.
const (
	// hdrNode names the node that published an event, so that a node
	// skips its own events (they reached its local members directly).
	hdrNode = "Lectern-Node"
	// hdrError and hdrErrorMessage carry a relay handler's failure.
	hdrError        = "Lectern-Error"
	hdrErrorMessage = "Lectern-Error-Message"
)

// Bus defaults.
const (
	// DefaultRelayTimeout bounds one relay negotiation at the origin.
	DefaultRelayTimeout = 10 * time.Second
	// DefaultMaxRelays bounds relay negotiations in flight at one node.
	DefaultMaxRelays = 64
	// eventPendingMsgs and eventPendingBytes bound the events queued for
	// one class's handler; past them nats.go drops and reports a slow
	// consumer rather than grow without bound.
	eventPendingMsgs  = 4096
	eventPendingBytes = 8 << 20
)

// Relay error codes on the wire.
var relayCodes = []struct {
	code string
	err  error
}{
	{"not_origin", ErrNotOrigin},
	{"busy", ErrBusy},
	{"invalid", ErrInvalid},
	{"closed", ErrClosed},
}

// BusOptions configure a Bus. Conn and Self are required.
type BusOptions struct {
	Conn *nats.Conn
	Self NodeID
	// RelayTimeout bounds one relay negotiation (DefaultRelayTimeout).
	RelayTimeout time.Duration
	// MaxRelays bounds relay negotiations in flight here (DefaultMaxRelays).
	MaxRelays int
	Logger    zerolog.Logger
}

// EventHandler receives one classroom event published by another node.
// It runs on the subscription's own goroutine, in publishing order.
type EventHandler func(from NodeID, event []byte)

// RelayRequest is a node's request to pull a class's tracks from the
// origin: Offer is opaque here (the media plane's session description).
type RelayRequest struct {
	Room  sfu.RoomID `json:"room"`
	From  NodeID     `json:"from"`
	Offer []byte     `json:"offer"`
}

// RelayHandler answers a relay request at the origin; ctx ends after
// RelayTimeout or when the Bus closes. Return ErrNotOrigin when this node
// does not carry the class as origin.
type RelayHandler func(ctx context.Context, req RelayRequest) (answer []byte, err error)

// RemoteError is a failure reported by the node that handled a request.
type RemoteError struct {
	Node    NodeID
	Code    string
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("cluster: node %s: %s: %s", e.Node, e.Code, e.Message)
}

// Is matches the sentinel the remote node's error was made from.
func (e *RemoteError) Is(target error) bool {
	for _, c := range relayCodes {
		if c.code == e.Code && c.err == target {
			return true
		}
	}
	return target == ErrRelayFailed && e.Code == "failed"
}

// Bus carries classroom events between the nodes of a class, and relay
// signaling between nodes, over core NATS.
type Bus struct {
	opts BusOptions
	nc   *nats.Conn
	log  zerolog.Logger
	ctx  context.Context // ends at Close
	stop context.CancelFunc
	sem  chan struct{} // relay negotiations in flight
	wg   sync.WaitGroup

	mu     sync.Mutex // guards everything below
	subs   map[*nats.Subscription]struct{}
	relay  *nats.Subscription
	closed bool
}

// NewBus returns a Bus for this node.
func NewBus(opts BusOptions) (*Bus, error) {
	if opts.Conn == nil || !opts.Self.Valid() {
		return nil, fmt.Errorf("%w: bus needs Conn and a valid Self", ErrInvalid)
	}
	if opts.RelayTimeout <= 0 {
		opts.RelayTimeout = DefaultRelayTimeout
	}
	if opts.MaxRelays <= 0 {
		opts.MaxRelays = DefaultMaxRelays
	}
	b := &Bus{
		opts: opts, nc: opts.Conn,
		log:  opts.Logger.With().Str("component", "cluster").Str("node", string(opts.Self)).Logger(),
		sem:  make(chan struct{}, opts.MaxRelays),
		subs: map[*nats.Subscription]struct{}{},
	}
	b.ctx, b.stop = context.WithCancel(context.Background())
	return b, nil
}

// Publish sends one classroom event to the other nodes carrying the
// class. With nobody else subscribed NATS drops it at the first server.
// While NATS is reconnecting, nats.go buffers it and sends it after.
func (b *Bus) Publish(room sfu.RoomID, event []byte) error {
	if err := checkRoom(room); err != nil {
		return err
	}
	m := &nats.Msg{Subject: eventsSubject(room), Data: event, Header: nats.Header{}}
	m.Header.Set(hdrNode, string(b.opts.Self))
	if err := b.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Flush waits until NATS has every event published so far.
func (b *Bus) Flush() error {
	if err := b.nc.Flush(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Subscription is one class's event subscription.
type Subscription struct {
	b   *Bus
	sub *nats.Subscription
}

// Subscribe calls h with the class's events published by other nodes,
// until the Subscription or the Bus is closed. A node subscribes while
// it has members of the class.
func (b *Bus) Subscribe(room sfu.RoomID, h EventHandler) (*Subscription, error) {
	if err := checkRoom(room); err != nil {
		return nil, err
	}
	self := string(b.opts.Self)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	sub, err := b.nc.Subscribe(eventsSubject(room), func(m *nats.Msg) {
		if from := m.Header.Get(hdrNode); from != self {
			h(NodeID(from), m.Data)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := sub.SetPendingLimits(eventPendingMsgs, eventPendingBytes); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	b.subs[sub] = struct{}{}
	return &Subscription{b: b, sub: sub}, nil
}

// Close ends the subscription; further calls do nothing.
func (s *Subscription) Close() error {
	s.b.mu.Lock()
	_, ok := s.b.subs[s.sub]
	delete(s.b.subs, s.sub)
	s.b.mu.Unlock()
	if !ok {
		return nil
	}
	return unsubscribe(s.sub)
}

func unsubscribe(sub *nats.Subscription) error {
	err := sub.Unsubscribe()
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		return nil // gone with the connection
	}
	return err
}

// OnReconnect calls fn, from a goroutine of the Bus, each time the NATS
// connection comes back after an outage, until Close. nats.go has
// subscribed again and sent what it buffered by then, so what fn
// publishes reaches the nodes that are back too. Events published during
// the outage may have reached nobody (the other nodes may subscribe again
// after they arrived): fn is where a node tells the others its state.
func (b *Bus) OnReconnect(fn func()) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	ch := b.nc.StatusChanged(nats.CONNECTED)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer b.nc.RemoveStatusListener(ch)
		for {
			select {
			case <-b.ctx.Done():
				return
			case _, ok := <-ch:
				if !ok {
					return
				}
				fn()
			}
		}
	}()
	return nil
}

// HandleRelay makes this node answer relay requests with h (it is the
// origin of its classes). It can be set once.
func (b *Bus) HandleRelay(h RelayHandler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return ErrClosed
	case b.relay != nil:
		return fmt.Errorf("%w: relay handler already set", ErrInvalid)
	}
	sub, err := b.nc.Subscribe(relaySubject(b.opts.Self), func(m *nats.Msg) { b.serveRelay(m, h) })
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	b.relay = sub
	return nil
}

// serveRelay answers one request from a goroutine of its own: a
// negotiation may take a while, and must not hold up the next one.
func (b *Bus) serveRelay(m *nats.Msg, h RelayHandler) {
	select {
	case b.sem <- struct{}{}:
	default:
		b.respond(m, nil, ErrBusy)
		return
	}
	// Add under mu, which Close takes to set closed before it Waits.
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.sem
		b.respond(m, nil, ErrClosed)
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		defer func() { <-b.sem }()
		var req RelayRequest
		if err := json.Unmarshal(m.Data, &req); err != nil || checkRoom(req.Room) != nil || !req.From.Valid() {
			b.respond(m, nil, fmt.Errorf("%w: malformed relay request", ErrInvalid))
			return
		}
		ctx, cancel := context.WithTimeout(b.ctx, b.opts.RelayTimeout)
		defer cancel()
		answer, err := h(ctx, req)
		b.respond(m, answer, err)
	}()
}

// respond sends the answer, or the error as headers.
func (b *Bus) respond(m *nats.Msg, answer []byte, err error) {
	reply := &nats.Msg{Subject: m.Reply, Data: answer, Header: nats.Header{}}
	reply.Header.Set(hdrNode, string(b.opts.Self))
	if err != nil {
		code := "failed"
		for _, c := range relayCodes {
			if errors.Is(err, c.err) {
				code = c.code
				break
			}
		}
		reply.Header.Set(hdrError, code)
		reply.Header.Set(hdrErrorMessage, err.Error())
		reply.Data = nil
	}
	if perr := b.nc.PublishMsg(reply); perr != nil {
		b.log.Debug().Err(perr).Msg("cluster: relay reply")
	}
}

// RequestRelay sends a relay offer for room to the origin node and
// returns its answer. ErrNodeUnreachable when no node answers there;
// a *RemoteError (matching ErrNotOrigin, ErrBusy, ErrRelayFailed...)
// when the origin refused.
func (b *Bus) RequestRelay(ctx context.Context, origin NodeID, room sfu.RoomID, offer []byte) ([]byte, error) {
	if !origin.Valid() || checkRoom(room) != nil {
		return nil, fmt.Errorf("%w: relay to %q for %q", ErrInvalid, origin, room)
	}
	data, err := json.Marshal(RelayRequest{Room: room, From: b.opts.Self, Offer: offer})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.opts.RelayTimeout)
		defer cancel()
	}
	resp, err := b.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: relaySubject(origin), Data: data})
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("%w: %s", ErrNodeUnreachable, origin)
	case err != nil:
		return nil, fmt.Errorf("%w: relay to %s: %w", ErrUnavailable, origin, err)
	}
	if code := resp.Header.Get(hdrError); code != "" {
		return nil, &RemoteError{Node: origin, Code: code, Message: resp.Header.Get(hdrErrorMessage)}
	}
	return resp.Data, nil
}

// Close ends every subscription and waits for relay handlers in flight
// (their contexts are cancelled) and OnReconnect calls. Further calls do
// nothing.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := make([]*nats.Subscription, 0, len(b.subs)+1)
	for s := range b.subs {
		subs = append(subs, s)
	}
	if b.relay != nil {
		subs = append(subs, b.relay)
	}
	b.subs = map[*nats.Subscription]struct{}{}
	b.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, unsubscribe(s))
	}
	b.stop()
	b.wg.Wait()
	return errors.Join(errs...)
}
