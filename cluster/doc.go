// Package cluster is Lectern's control plane across nodes, over NATS.
// Media never travels through NATS: it carries who is alive and how busy
// (Registry), which node is the origin of each class (Directory, a
// JetStream key-value bucket claimed with compare-and-set), the classroom
// events every node of a class must see, and the signaling of node-to-node
// relays (Bus).
//
// Subjects (docs/scaling.md gives their rates):
//
//	lectern.nodes.<node>          announcements, one a second per node (core NATS)
//	lectern.room.<room>.events    classroom events of one class (core NATS)
//	lectern.node.<node>.relay     relay offers to one node (request/reply)
//	$KV.lectern-rooms.<room>      the class directory (JetStream KV)
//
// A class id may hold any printable UTF-8, which NATS subjects and KV keys
// cannot: roomToken encodes it into one subject token.
//
// Every type takes its NATS connection, logger and settings from its
// options; Close stops its goroutines. There is no package-level mutable
// state.
//
// Lock order: each type has one mutex guarding its state and never calls
// out (to NATS, the registry or a callback) while holding it, so no two
// of them are ever held together. Directory reads the Registry only with
// its own lock released. Directory's per-class claim locks are the one
// exception: they serialise Claim, Release and the upkeep of claims for
// one class, are held across NATS round trips, and are taken before
// Directory.mu, never after.
package cluster
