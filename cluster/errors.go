package cluster

import "errors"

// Sentinel errors. signaling maps them to HTTP statuses and close codes.
var (
	// ErrInvalid: an option or argument is malformed.
	ErrInvalid = errors.New("cluster: invalid argument")
	// ErrClosed: the Registry, Directory or Bus was closed.
	ErrClosed = errors.New("cluster: closed")
	// ErrNoEntry: the class has no origin in the directory.
	ErrNoEntry = errors.New("cluster: class not in the directory")
	// ErrTaken: another live node is the class's origin (the error comes
	// with its entry).
	ErrTaken = errors.New("cluster: class has another origin")
	// ErrNotOwner: the entry to release is not this node's.
	ErrNotOwner = errors.New("cluster: class's origin is another node")
	// ErrContention: a claim kept losing compare-and-set races.
	ErrContention = errors.New("cluster: claim lost too many races")
	// ErrNoNode: no live node can take a class.
	ErrNoNode = errors.New("cluster: no node can take the class")
	// ErrUnavailable: NATS or JetStream did not answer.
	ErrUnavailable = errors.New("cluster: NATS unavailable")
	// ErrNodeUnreachable: no node answers on the relay subject.
	ErrNodeUnreachable = errors.New("cluster: node unreachable")
	// ErrNotOrigin: a relay was asked of a node that is not the origin.
	ErrNotOrigin = errors.New("cluster: node is not the class's origin")
	// ErrBusy: the node has too many relay negotiations in flight.
	ErrBusy = errors.New("cluster: node busy")
	// ErrRelayFailed: the origin could not answer a relay offer.
	ErrRelayFailed = errors.New("cluster: relay failed at the origin")
)
