// Package signaling is Lectern's control plane for one node: the classroom
// websocket protocol (docs/protocol.md), the HTTP API used by the pages,
// health, readiness and metrics. It drives the media plane (package sfu)
// and never touches RTP itself.
package signaling
