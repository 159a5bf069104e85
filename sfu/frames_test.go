package sfu

import (
	"testing"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
)

// TestFrameEnds: a video packet ends a frame when it carries the marker,
// when its frame has already ended, or when it starts a frame after one
// that never saw its marker.
func TestFrameEnds(t *testing.T) {
	t.Parallel()
	type pkt struct {
		ts     uint32
		marker bool
		want   bool
	}
	for _, tc := range []struct {
		name string
		pkts []pkt
	}{
		{"frames of three packets", []pkt{
			{3000, false, false}, {3000, false, false}, {3000, true, true},
			{6000, false, false}, {6000, true, true},
		}},
		{"a late packet of an ended frame", []pkt{
			{3000, false, false}, {3000, true, true}, {3000, false, true},
			{6000, false, false}, {3000, false, true}, {6000, true, true},
		}},
		{"a lost marker releases the frame when the next one begins", []pkt{
			{3000, false, false}, {3000, false, false},
			{6000, false, true}, {6000, false, false}, {6000, true, true},
		}},
		{"a sender that sets no marker", []pkt{
			{3000, false, false}, {6000, false, true}, {9000, false, true},
		}},
		{"the marker packet retransmitted after the next frame began", []pkt{
			{3000, false, false}, {6000, false, true}, {3000, true, true}, {6000, true, true},
		}},
		{"timestamps wrap", []pkt{
			{0xffffff00, false, false}, {0xffffff00, true, true},
			{0x100, false, false}, {0x100, true, true}, {0xffffff00, false, true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f frameEnds
			for i, p := range tc.pkts {
				got := f.ends(&rtp.Header{Timestamp: p.ts, Marker: p.marker})
				require.Equal(t, p.want, got, "packet %d (ts %d, marker %v)", i, p.ts, p.marker)
			}
		})
	}
}
