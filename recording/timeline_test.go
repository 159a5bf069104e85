package recording

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const ms = int64(time.Millisecond)

func TestClockMapping(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC).UnixNano()
	type pkt struct {
		ts      uint32
		arrival int64 // ns after base
		want    int64 // mapped, ns after base
	}
	tests := []struct {
		name string
		rate uint32
		pkts []pkt
	}{
		{"steady 90 kHz", 90000, []pkt{{1000, 0, 0}, {4000, 33 * ms, 3000 * int64(time.Second) / 90000}}},
		{"wrap-around", 90000, []pkt{
			{0xFFFFFF00, 0, 0},
			{0x00000100, 10 * ms, 512 * int64(time.Second) / 90000}, // 0x200 ticks later, across 2^32
			{0xFFFFFF80, 12 * ms, 128 * int64(time.Second) / 90000}, // late packet from before the wrap
		}},
		{"reorder keeps arrival jitter out", 48000, []pkt{
			{48000, 0, 0}, {48960 + 960, 45 * ms, 40 * ms}, {48960, 47 * ms, 20 * ms},
		}},
		{"gap in packets is a gap in time", 48000, []pkt{{0, 0, 0}, {48000 * 5, 5000 * ms, 5000 * ms}}},
		{"sender clock jump re-anchors on arrival", 90000, []pkt{
			{0, 0, 0}, {3000, 33 * ms, 3000 * int64(time.Second) / 90000},
			{3000 + 90000*3600, 66 * ms, 66 * ms}, // encoder restart: a jump of an hour
			{3000 + 90000*3600 + 3000, 99 * ms, 66*ms + 3000*int64(time.Second)/90000},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClock(tc.rate, false)
			g := &syncGroup{}
			for i, p := range tc.pkts {
				c.observe(p.ts, base+p.arrival, senderReport{}, g)
				require.Equal(t, base+p.want, c.at(p.ts), "packet %d", i)
			}
		})
	}
}

// TestClockSenderReports: two tracks of one publisher whose packets reach
// the server with different delays line up on their sender reports; the
// reconnect case shows a new group starting from wall clock.
func TestClockSenderReports(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC).UnixNano()
	senderT0 := time.Date(2001, 5, 5, 0, 0, 0, 0, time.UTC) // the sender's clock is far off: only differences count
	tests := []struct {
		name        string
		audioDelay  int64
		withReports bool
		wantSkew    int64 // audio mapped minus video mapped, same capture time
	}{
		{"reports cancel a 300 ms audio delay", 300 * ms, true, 0},
		{"without reports arrival decides", 300 * ms, false, 290 * ms},
		{"reports with equal delays", 10 * ms, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := &syncGroup{}
			v, a := newClock(90000, true), newClock(48000, false)
			vsr := senderReport{ntp: senderT0, rtpTS: 5000, ok: tc.withReports}
			asr := senderReport{ntp: senderT0, rtpTS: 777, ok: tc.withReports}
			for i := range int64(50) { // 1 s of both, captured together
				capture := i * 20 * ms
				v.observe(5000+uint32(capture*90000/int64(time.Second)), base+capture+10*ms, vsr, g)
				a.observe(777+uint32(capture*48000/int64(time.Second)), base+capture+tc.audioDelay, asr, g)
			}
			capture := 500 * ms
			vt := v.at(5000 + uint32(capture*90000/int64(time.Second)))
			at := a.at(777 + uint32(capture*48000/int64(time.Second)))
			require.InDelta(t, tc.wantSkew, at-vt, float64(ms))
		})
	}
}

// TestClockResync: a report that disagrees with the arrival-based mapping
// moves it; one within tolerance does not (no wobble from jitter).
func TestClockResync(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC).UnixNano()
	sender := time.Unix(0, base-17*ms) // 10 ms off the arrival mapping: within tolerance
	tests := []struct {
		name   string
		srAt   time.Time
		steady bool
		moveNS int64
	}{
		{"small difference ignored", sender, false, 0},
		{"large difference applied", time.Unix(0, base-107*ms), false, -100 * ms},
		{"a steady (video) clock keeps its first sync", time.Unix(0, base-107*ms), true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := &syncGroup{offset: 7 * ms, ok: true}
			c := newClock(48000, tc.steady)
			c.observe(0, base, senderReport{}, g)
			before := c.at(960)
			c.synced = true // as if a first report had been applied
			c.observe(960, base+20*ms, senderReport{ntp: tc.srAt, rtpTS: 0, ok: true}, g)
			require.Equal(t, tc.moveNS, c.at(960)-before)
		})
	}
}
