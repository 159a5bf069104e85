package sfu

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// step is one packet offered to a seqRewriter: skip marks a drop before it.
type step struct {
	src    uint16
	skip   bool
	want   uint16
	wantOK bool
}

func TestSeqRewriter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		first uint16
		steps []step
	}{
		{"contiguous input stays contiguous", 1000, []step{
			{src: 10, want: 1000, wantOK: true}, {src: 11, want: 1001, wantOK: true}, {src: 12, want: 1002, wantOK: true},
		}},
		{"skip closes the gap", 500, []step{
			{src: 10, want: 500, wantOK: true}, {src: 11, want: 501, wantOK: true},
			{src: 20, skip: true, want: 502, wantOK: true}, {src: 21, want: 503, wantOK: true},
		}},
		{"upstream loss is kept as a gap", 0, []step{
			{src: 10, want: 0, wantOK: true}, {src: 13, want: 3, wantOK: true},
			{src: 12, want: 2, wantOK: true}, // late arrival fills its own slot
		}},
		{"source wrap-around", 7, []step{
			{src: 65534, want: 7, wantOK: true}, {src: 65535, want: 8, wantOK: true},
			{src: 0, want: 9, wantOK: true}, {src: 1, want: 10, wantOK: true},
		}},
		{"output wrap-around across a skip", 65534, []step{
			{src: 100, want: 65534, wantOK: true}, {src: 101, want: 65535, wantOK: true},
			{src: 300, skip: true, want: 0, wantOK: true}, {src: 301, want: 1, wantOK: true},
		}},
		{"skip across source wrap", 40, []step{
			{src: 65530, want: 40, wantOK: true}, {src: 5, skip: true, want: 41, wantOK: true}, {src: 6, want: 42, wantOK: true},
		}},
		{"duplicate dropped", 0, []step{
			{src: 10, want: 0, wantOK: true}, {src: 10}, {src: 11, want: 1, wantOK: true},
		}},
		{"late packet from before a skip dropped", 0, []step{
			{src: 10, want: 0, wantOK: true}, {src: 20, skip: true, want: 1, wantOK: true},
			{src: 15}, {src: 21, want: 2, wantOK: true},
		}},
		{"old packet while resync pending dropped", 0, []step{
			{src: 10, want: 0, wantOK: true}, {src: 9, skip: true}, {src: 12, want: 1, wantOK: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newSeqRewriter(tc.first)
			for i, s := range tc.steps {
				if s.skip {
					r.skip()
				}
				got, ok := r.rewrite(s.src)
				require.Equal(t, s.wantOK, ok, "step %d (src %d)", i, s.src)
				if ok {
					require.Equal(t, s.want, got, "step %d (src %d)", i, s.src)
				}
			}
		})
	}
}

func TestSentMap(t *testing.T) {
	t.Parallel()
	var m sentMap
	_, ok := m.lookup(5)
	require.False(t, ok, "empty map")
	m.record(65535, 7)
	m.record(0, 9) // output wrap
	src, ok := m.lookup(65535)
	require.True(t, ok)
	require.Equal(t, uint16(7), src)
	src, ok = m.lookup(0)
	require.True(t, ok)
	require.Equal(t, uint16(9), src)
	m.record(sentMapSize, 11) // same slot as 0, newer
	_, ok = m.lookup(0)
	require.False(t, ok, "overwritten entry is stale")
}
