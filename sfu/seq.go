package sfu

import "github.com/pion/webrtc/v4"

// seqRewriter maps a track's sequence numbers onto a down track's own
// sequence. RFC 3550 (5.1, A.1) receivers read gaps in the sequence as
// loss: a gap the SFU makes on purpose (a subscriber skipped packets
// because its queue was full, or waits for a keyframe) must not look like
// loss, or the subscriber would NACK packets that will never come and its
// jitter buffer would wait for them. So after every skip the offset is
// recomputed to keep the outgoing sequence contiguous. Gaps that come from
// the publisher are kept: they are real loss, and a NACK for them may be
// answered once the packet is recovered upstream.
//
// Only the down track's writer shard uses a seqRewriter.
type seqRewriter struct {
	started bool
	resync  bool
	offset  uint16 // source minus outgoing
	lastSrc uint16 // highest source sequence number forwarded
	lastOut uint16
	floor   uint16 // first source seq after the last resync
}

// newSeqRewriter starts the outgoing sequence at first (RFC 3550 5.1
// recommends a random initial value).
func newSeqRewriter(first uint16) seqRewriter {
	return seqRewriter{lastOut: first - 1, resync: true}
}

// skip records that packets were left out: the next forwarded packet
// follows the last outgoing one directly.
func (r *seqRewriter) skip() { r.resync = true }

// rewrite returns the outgoing sequence number for source seq src, or
// false when the packet must be dropped (a duplicate, or an out-of-order
// packet from before the last skip, whose slot in the outgoing sequence is
// already taken).
func (r *seqRewriter) rewrite(src uint16) (uint16, bool) {
	if r.resync {
		if r.started && int16(src-r.lastSrc) <= 0 {
			return 0, false
		}
		r.resync, r.started = false, true
		r.offset = src - (r.lastOut + 1)
		r.floor, r.lastSrc = src, src
		r.lastOut++
		return r.lastOut, true
	}
	switch d := int16(src - r.lastSrc); {
	case d > 0:
		r.lastSrc = src
		r.lastOut = src - r.offset
		return r.lastOut, true
	case d == 0:
		return 0, false
	default:
		if int16(src-r.floor) < 0 {
			return 0, false
		}
		return src - r.offset, true
	}
}

// sentMapSize covers the largest retransmit ring, so any packet still in
// a track's ring can be found from the outgoing seq a NACK names: the
// outgoing sequence never advances faster than the source's (rewrite
// keeps the source's gaps and closes the SFU's own), so an outgoing seq
// more than a ring behind the newest names a source packet more than a
// ring behind too, already gone from the ring. A larger map would only
// answer NACKs the ring cannot serve, and every down track embeds one.
const sentMapSize = ringSizeVideo

// sentMap remembers which source packet went out under each recent
// outgoing sequence number, so a subscriber's NACK (RFC 4585 6.2.1), which
// names outgoing numbers, can be answered from the track's ring even
// across offset changes. Only the writer shard uses it. A nil map
// remembers nothing: audio negotiates no NACK (media.go), so its down
// tracks keep none.
type sentMap struct {
	out [sentMapSize]uint16
	src [sentMapSize]uint16
	ok  [sentMapSize]bool
}

// newSentMap is a map for a down track of kind: none for audio.
func newSentMap(kind webrtc.RTPCodecType) *sentMap {
	if kind != webrtc.RTPCodecTypeVideo {
		return nil
	}
	return &sentMap{}
}

func (m *sentMap) record(out, src uint16) {
	if m == nil {
		return
	}
	i := out % sentMapSize
	m.out[i], m.src[i], m.ok[i] = out, src, true
}

func (m *sentMap) lookup(out uint16) (uint16, bool) {
	if m == nil {
		return 0, false
	}
	i := out % sentMapSize
	if !m.ok[i] || m.out[i] != out {
		return 0, false
	}
	return m.src[i], true
}

// reset forgets every entry.
func (m *sentMap) reset() {
	if m != nil {
		*m = sentMap{}
	}
}
