package sfu

import "github.com/pion/rtp"

// frameEnds tells, packet by packet, when a video frame is complete. Down
// tracks write video a frame at a time: the packets of a frame wait in the
// queue for its last one, so each student's share of a frame leaves in
// one writer pass and, where the kernel offers it, one GSO message (see
// batch.go), instead of a pass and a system call per packet. A receiver
// cannot decode a frame before its last packet anyway, so this adds no
// delay to what a student sees.
//
// The last packet of a frame carries the RTP marker bit (RFC 7741 4.1 for
// VP8, RFC 6184 5.1 for H.264, the AV1 RTP specification 7.2 for the end
// of a temporal unit). A packet must not wait for a marker that will not
// come: a packet of a frame whose marker has passed (late or retransmitted)
// ends at once, and a frame that begins while the previous one saw no
// marker (lost, or a sender that sets none) releases the previous one.
type frameEnds struct {
	seen    bool   // a packet has been seen
	last    uint32 // the newest frame's RTP timestamp
	marked  bool   // a marker has been seen
	markedT uint32 // the timestamp of the newest frame that saw its marker
}

// ends reports whether h's packet completes what a receiver can use now.
func (f *frameEnds) ends(h *rtp.Header) bool {
	ts := h.Timestamp
	newFrame := !f.seen || int32(ts-f.last) > 0
	prevOpen := f.seen && newFrame && !(f.marked && f.markedT == f.last)
	if newFrame {
		f.seen, f.last = true, ts
	}
	if h.Marker {
		if !f.marked || int32(ts-f.markedT) > 0 {
			f.marked, f.markedT = true, ts
		}
		return true
	}
	return prevOpen || (f.marked && int32(ts-f.markedT) <= 0)
}
