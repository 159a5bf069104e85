package sfu

import (
	"fmt"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// discardWriter is a non-network webrtc.TrackLocalWriter.
type discardWriter struct{ n int }

func (w *discardWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.n += len(payload)
	return len(payload), nil
}

func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkFanout measures one packet through the whole forwarding path:
// pooled buffer, parse, keyframe check, retransmit ring, GOP cache, fan-out
// to N down tracks, and each down track's header rewrite and write into a
// non-network writer, scheduling on a writer shard included. The shard's
// ready list runs inline (not on its goroutine) so the figure is CPU work,
// not wake-ups.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			benchFanout(b, n)
		})
	}
}

func benchFanout(b *testing.B, n int) {
	tt := newTestTrack(webrtc.RTPCodecTypeVideo)
	defer tt.stop()
	downs := make([]*DownTrack, n)
	w := &discardWriter{}
	sh := newWriterShard(nil) // run inline below, with no goroutine
	for i := range downs {
		downs[i] = newDownTrack(tt.Track, tt.stats, zerolog.Nop())
		downs[i].binding.Store(&binding{id: "b", ssrc: uint32(i + 1), pt: 96, w: w})
		downs[i].setShard(sh)
		tt.AddSink(downs[i])
	}
	raw := make([][]byte, 2)
	for i, key := range []bool{true, false} {
		var err error
		raw[i], err = (&rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: 100, SSRC: 42, Marker: true}, // one packet a frame
			Payload: vp8Payload(uint32(i), key),
		}).Marshal()
		if err != nil {
			b.Fatal(err)
		}
	}
	step := func(r []byte) {
		p := tt.pool.get()
		m := copy(p.buf[:], r)
		p.buf[2], p.buf[3] = byte(tt.seq>>8), byte(tt.seq) // sequence number
		tt.seq++
		if err := p.parse(m); err != nil {
			b.Fatal(err)
		}
		tt.handle(p, tt.now())
		p.Release()
		for sh.runReady() {
		}
	}
	step(raw[0]) // a keyframe first: video sinks start on one
	for i := 0; i < 2000; i++ {
		step(raw[1]) // warm the pool, the ring and the GOP cache
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step(raw[1])
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/pkt/sub")
	for _, d := range downs {
		if d.Dropped() != 0 {
			b.Fatalf("down track dropped %d packets", d.Dropped())
		}
	}
}
