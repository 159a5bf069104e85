package sfu

import (
	"testing"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
)

// testPacket makes a pooled packet with the given sequence number.
func testPacket(t testing.TB, pool *packetPool, seq uint16, ts uint32, key bool) *Packet {
	t.Helper()
	raw, err := (&rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 1},
		Payload: []byte{byte(seq), byte(seq >> 8), 0xab},
	}).Marshal()
	require.NoError(t, err)
	p := pool.get()
	n := copy(p.buf[:], raw)
	require.NoError(t, p.parse(n))
	p.keyframe = key
	return p
}

func TestRetransmitRing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		put    []uint16
		get    uint16
		wantOK bool
	}{
		{"empty ring", nil, 1, false},
		{"latest", []uint16{1, 2, 3}, 3, true},
		{"older within ring", []uint16{1, 2, 3}, 1, true},
		{"never stored", []uint16{1, 3}, 2, false},
		{"newer than highest", []uint16{1, 2}, 3, false},
		{"across wrap", []uint16{65534, 65535, 0, 1}, 65535, true},
		{"across wrap, after", []uint16{65534, 65535, 0, 1}, 0, true},
		{"stale: overwritten one ring later", seqRange(10, 10+16+1), 10, false},
		{"oldest still held", seqRange(10, 10+16), 10, true},
		{"far too old after wrap", seqRange(65530, 65530+20), 65530, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := newPacketPool()
			r := newRetransmitRing(16)
			for _, s := range tc.put {
				p := testPacket(t, pool, s, 0, false)
				r.put(p)
				p.Release()
			}
			p := r.get(tc.get)
			require.Equal(t, tc.wantOK, p != nil)
			if p != nil {
				require.Equal(t, tc.get, p.Header().SequenceNumber)
				require.Equal(t, []byte{byte(tc.get), byte(tc.get >> 8), 0xab}, p.Payload())
				p.Release()
			}
			r.clear()
		})
	}
}

func seqRange(from, to int) []uint16 {
	var s []uint16
	for i := from; i < to; i++ {
		s = append(s, uint16(i))
	}
	return s
}

func TestRingIgnoresTooOldPacket(t *testing.T) {
	t.Parallel()
	pool := newPacketPool()
	r := newRetransmitRing(16)
	for _, s := range seqRange(100, 120) {
		p := testPacket(t, pool, s, 0, false)
		r.put(p)
		p.Release()
	}
	old := testPacket(t, pool, 80, 0, false) // same slot as 112, 64 behind
	r.put(old)
	require.Equal(t, int32(1), old.refs.Load(), "the ring must not keep a packet it cannot serve")
	old.Release()
	p := r.get(112)
	require.NotNil(t, p, "a too-old packet must not evict a live one")
	p.Release()
	r.clear()
}

func TestGOPCache(t *testing.T) {
	t.Parallel()
	pool := newPacketPool()
	g := newGOPCache()
	var got []uint16
	sink := sinkFunc(func(p *Packet) { got = append(got, p.Header().SequenceNumber) })

	add := func(seq uint16, ts uint32, key bool, now int64) {
		p := testPacket(t, pool, seq, ts, key)
		g.add(p, now)
		p.Release()
	}
	add(1, 100, false, 0) // before any keyframe: not cached
	require.False(t, g.prime(sink))
	add(2, 200, true, 1) // SPS-like first keyframe packet
	add(3, 200, true, 2) // IDR with the same timestamp: same GOP
	add(4, 300, false, 3)
	require.True(t, g.prime(sink))
	require.Equal(t, []uint16{2, 3, 4}, got)

	got = nil
	add(5, 400, true, 4) // a new keyframe starts a new GOP
	add(6, 500, false, 5)
	require.True(t, g.prime(sink))
	require.Equal(t, []uint16{5, 6}, got)

	add(7, 600, false, 5+gopMaxAge+1) // too old a GOP is dropped
	require.False(t, g.prime(sink))
	g.reset()
}

func TestGOPCachePacketCap(t *testing.T) {
	t.Parallel()
	pool := newPacketPool()
	g := newGOPCache()
	for i := 0; i <= gopMaxPackets; i++ {
		p := testPacket(t, pool, uint16(i), 1, i == 0)
		g.add(p, int64(i))
		p.Release()
	}
	require.False(t, g.active, "a GOP longer than the cap is dropped")
	require.Empty(t, g.pkts)
}

// sinkFunc adapts a function to Sink for tests (compared by pointer).
type sinkFunc func(*Packet)

func (f sinkFunc) Deliver(p *Packet) { f(p) }
