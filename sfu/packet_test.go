package sfu

import (
	"testing"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
)

func TestPacketRefcountReturnsToPool(t *testing.T) {
	t.Parallel()
	pool := newPacketPool()
	p := testPacket(t, pool, 7, 0, true)
	p.Retain()
	p.Retain()
	require.Equal(t, int32(3), p.refs.Load())
	p.Release()
	p.Release()
	require.Equal(t, int32(1), p.refs.Load())
	require.True(t, p.Keyframe(), "a held packet keeps its state")
	p.Release()
	require.Zero(t, p.refs.Load())
	require.Nil(t, p.payload, "a recycled packet is reset")
	require.False(t, p.keyframe)
	require.Panics(t, p.Release, "releasing a free packet is a bug caught loudly")
}

func TestPacketParse(t *testing.T) {
	t.Parallel()
	withPadding, err := (&rtp.Packet{
		Header:      rtp.Header{Version: 2, Padding: true, SequenceNumber: 1, PayloadType: 111},
		Payload:     []byte{1, 2, 3},
		PaddingSize: 4,
	}).Marshal()
	require.NoError(t, err)
	tests := []struct {
		name    string
		raw     []byte
		payload []byte
		wantErr bool
	}{
		{"plain", []byte{0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 9, 8}, []byte{9, 8}, false},
		{"padding removed", withPadding, []byte{1, 2, 3}, false},
		{"short header", []byte{0x80, 96, 0}, nil, true},
		{"padding longer than packet", []byte{0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 40}, nil, true},
		{"zero padding length", []byte{0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 1, 0}, nil, true},
		{"too large", make([]byte, packetBufSize+1), nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewPacket(tc.raw, false)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.payload, p.Payload())
			require.Equal(t, len(tc.raw), p.Size())
			p.Release()
		})
	}
}

func TestPacketPoolReuseDoesNotAllocate(t *testing.T) {
	// Not parallel: testing.AllocsPerRun needs a quiet process, and the
	// race detector makes sync.Pool drop items on purpose.
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector; covered by BenchmarkFanout")
	}
	pool := newPacketPool()
	raw := []byte{0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 9, 8}
	allocs := testing.AllocsPerRun(1000, func() {
		p := pool.get()
		n := copy(p.buf[:], raw)
		_ = p.parse(n)
		p.Retain()
		p.Release()
		p.Release()
	})
	require.Zero(t, allocs)
}
