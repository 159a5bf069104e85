// Package turnserver is Lectern's embedded TURN server (RFC 8656), for
// students whose network lets no UDP out, or nothing but TCP to one port.
//
// It is off by default. When on, it listens for TURN over UDP, TCP and TLS
// (RFC 8656 3.1), and may also take connections handed over by the node's
// HTTP listener in single-port mode (ServeConn). Credentials are the
// time-limited REST-API kind coturn and LiveKit use
// (draft-uberti-behave-turn-rest-00 2.2): the username is
// "expiry:participant", the password base64(HMAC-SHA1(secret, username)),
// minted for one participant when it joins and checked here without any
// state. Each participant may hold a bounded number of allocations.
//
// The relay is made for one purpose: carrying a student's media to this
// node's own media port. Its peers are checked against a deny list
// (policy.go) so that it can never be used to reach the network it sits
// in (CVE-2020-26262), and relayed datagrams to this node's own addresses
// may only go to its media ports.
package turnserver
