package sfu

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
)

// FuzzFrameEnds plays a publisher's packets, as (timestamp step, marker)
// pairs of 3 bytes, through frameEnds, with the queue a down track keeps
// of packets waiting for their frame's end: a marker always ends a
// frame, and when a newer frame begins nothing older is still waiting
// (a lost or missing marker never holds a frame back for good). Seeds:
// the timestamps and markers of the VP8 test clip's packets, reordered
// and lost ones, a sender without markers, a timestamp wrap.
func FuzzFrameEnds(f *testing.F) {
	f.Fuzz(func(t *testing.T, start uint32, steps []byte) {
		var fe frameEnds
		var waiting []uint32
		ts, last, seen := start, uint32(0), false
		for i := 0; i+3 <= len(steps); i += 3 {
			ts += uint32(int32(int16(binary.BigEndian.Uint16(steps[i:]))) * 90)
			h := rtp.Header{Timestamp: ts, Marker: steps[i+2]&1 != 0}
			newer := !seen || int32(ts-last) > 0
			ends := fe.ends(&h)
			if h.Marker && !ends {
				t.Fatalf("packet %d: a marker packet does not end its frame", i/3)
			}
			if newer && !ends && len(waiting) > 0 {
				t.Fatalf("packet %d (ts %d) starts a newer frame while %v still wait", i/3, ts, waiting)
			}
			if newer {
				seen, last = true, ts
			}
			if ends {
				waiting = waiting[:0]
			} else {
				waiting = append(waiting, ts)
			}
		}
	})
}
