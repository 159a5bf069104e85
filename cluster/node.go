package cluster

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// Options configure a Node: the Registry, Directory and Bus of one
// Lectern node on one NATS connection.
type Options struct {
	Conn *nats.Conn
	// Self is the node's identity (ID, URL, MediaAddr, Capacity, Version).
	Self NodeInfo
	// Load reports the node's live load for its announcements.
	Load func() Load
	// Registry and Directory tuning; zero values take the defaults.
	Registry  RegistryOptions
	Directory DirectoryOptions
	Bus       BusOptions
	Logger    zerolog.Logger
}

// Node is one Lectern node's part of the control plane.
type Node struct {
	Registry  *Registry
	Directory *Directory
	Bus       *Bus
}

// Start brings up the registry, the directory (waiting for JetStream
// until ctx ends) and the bus. On failure what started is closed again.
func Start(ctx context.Context, opts Options) (*Node, error) {
	ro := opts.Registry
	ro.Conn, ro.Self, ro.Load, ro.Logger = opts.Conn, opts.Self, opts.Load, opts.Logger
	reg, err := NewRegistry(ro)
	if err != nil {
		return nil, err
	}
	do := opts.Directory
	do.Conn, do.Registry, do.Logger = opts.Conn, reg, opts.Logger
	dir, err := NewDirectory(ctx, do)
	if err != nil {
		return nil, errors.Join(err, reg.Close())
	}
	bo := opts.Bus
	bo.Conn, bo.Self, bo.Logger = opts.Conn, reg.Self().ID, opts.Logger
	bus, err := NewBus(bo)
	if err != nil {
		return nil, errors.Join(err, dir.Close(), reg.Close())
	}
	return &Node{Registry: reg, Directory: dir, Bus: bus}, nil
}

// Close stops the bus, the directory and, last, the registry, whose
// final announcement tells the other nodes this one is leaving.
func (n *Node) Close() error {
	return errors.Join(n.Bus.Close(), n.Directory.Close(), n.Registry.Close())
}
