// Package sfu is Lectern's media plane: a selective forwarding unit that
// receives RTP from publishers over one-way WebRTC peer connections and
// forwards it, untouched apart from per-subscriber header rewriting, to
// subscribers. It never decodes or transcodes.
//
// The package imports neither signaling nor recording: its edge is a few
// small types. A Publisher is an incoming peer connection; each of its
// remote tracks becomes a Track with exactly one reader goroutine. A Track
// fans packets out to Sinks; a Subscriber (an outgoing peer connection the
// server offers) owns one DownTrack per forwarded Track, and a recorder is
// just another Sink.
//
// Packets live in pooled, reference-counted buffers shared by every sink;
// each down track rewrites headers on its own copy and writes from its own
// goroutine behind a bounded queue, so a slow subscriber only ever hurts
// itself. NACKs are answered from one retransmit ring per track, keyframe
// requests are merged per track, and new video subscribers are primed
// from a cached group of pictures. LOCKS.md lists the goroutines, who owns
// what, and the lock order.
package sfu
