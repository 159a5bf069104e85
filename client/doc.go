// Package client is a Go client of Lectern's classroom protocol
// (docs/protocol.md). The end-to-end tests drive whole servers with it and
// the load tool runs many of them at once, so it is built like a real
// participant: one websocket with one reader and one writer goroutine, one
// sendonly peer connection per published stream and one recvonly peer
// connection per stream the server offers.
//
// Every peer connection is built from a pion API restricted to the loopback
// interface (see NewAPI): tests never send media to any other address.
//
// Lock order: Client.mu, then Subscription.mu or Publication.mu. No lock is
// held while calling into pion or writing to the websocket.
package client
