package sfu

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

type receptionLog struct {
	mu  sync.Mutex
	got []Reception
}

func (l *receptionLog) ObserveReception(r Reception) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, r)
}

// TestReceiverReportFigures: a receiver report about the down track's
// SSRC gives its loss, its jitter in time at the codec's clock rate and
// the round trip from LSR and DLSR (RFC 3550 6.4.1); a block about
// another SSRC is ignored; the first report says how long it took.
func TestReceiverReportFigures(t *testing.T) {
	t.Parallel()
	tt := newTestTrack(webrtc.RTPCodecTypeVideo)
	defer tt.stop()
	obs := &receptionLog{}
	var o ReceptionObserver = obs
	tt.stats.observer.Store(&o)
	d := startDownTrack(t, tt, &recordingWriter{}, 7)
	_, ok := d.Reception()
	require.False(t, ok)

	// An SR sent 0.5 s ago, held 0.25 s by the receiver: 0.25 s round trip.
	now := time.Now()
	lsr := uint32(timeToNTP(now.Add(-500*time.Millisecond)) >> 16)
	report := func(ssrc uint32) *rtcp.ReceiverReport {
		return &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{
			SSRC: ssrc, FractionLost: 64, Jitter: 9000, LastSenderReport: lsr, Delay: 1 << 14,
		}}}
	}
	d.handleRTCP([]rtcp.Packet{report(8)})
	_, ok = d.Reception()
	require.False(t, ok, "a report about another SSRC")
	d.handleRTCP([]rtcp.Packet{report(7)})
	r, ok := d.Reception()
	require.True(t, ok)
	require.Equal(t, webrtc.RTPCodecTypeVideo, r.Kind)
	require.InDelta(t, 0.25, r.FractionLost, 1e-9)
	require.Equal(t, 100*time.Millisecond, r.Jitter, "9000 units at 90 kHz")
	require.InDelta(t, 250*time.Millisecond, r.RTT, float64(50*time.Millisecond))
	require.True(t, r.First)
	require.Positive(t, r.Since)

	d.handleRTCP([]rtcp.Packet{&rtcp.SenderReport{SSRC: 1, Reports: report(7).Reports}})
	obs.mu.Lock()
	defer obs.mu.Unlock()
	require.Len(t, obs.got, 2, "the reception blocks of a sender report count too")
	require.False(t, obs.got[1].First)
}

func TestReportRTT(t *testing.T) {
	t.Parallel()
	now := time.Now()
	require.Zero(t, reportRTT(0, 0, now), "no sender report received yet")
	lsr := uint32(timeToNTP(now) >> 16)
	require.Zero(t, reportRTT(lsr+1000, 0, now), "a report from the future")
	lsr = uint32(timeToNTP(now.Add(-time.Second)) >> 16)
	require.InDelta(t, 500*time.Millisecond, reportRTT(lsr, 1<<15, now), float64(time.Millisecond))
}
