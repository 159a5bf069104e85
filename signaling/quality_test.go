package signaling

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"lectern/sfu"
)

// TestVerdict: each figure alone makes a report weak or bad at its
// threshold, and the worst figure decides.
func TestVerdict(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		r    sfu.Reception
		want string
	}{
		{sfu.Reception{}, verdictGood},
		{sfu.Reception{FractionLost: 0.019, RTT: 249 * time.Millisecond, Jitter: 29 * time.Millisecond}, verdictGood},
		{sfu.Reception{FractionLost: weakLoss}, verdictWeak},
		{sfu.Reception{RTT: weakRTT}, verdictWeak},
		{sfu.Reception{Jitter: weakJitter}, verdictWeak},
		{sfu.Reception{FractionLost: badLoss}, verdictBad},
		{sfu.Reception{RTT: badRTT, FractionLost: weakLoss}, verdictBad},
		{sfu.Reception{Jitter: badJitter}, verdictBad},
	} {
		c.r.Kind = webrtc.RTPCodecTypeVideo
		require.Equal(t, c.want, verdict(c.r), "%+v", c.r)
	}
}

// TestReceptionHistograms: the observer files each report by kind, skips
// the round trip of a report without one, and times media start once.
func TestReceptionHistograms(t *testing.T) {
	t.Parallel()
	q := newQuality()
	q.ObserveReception(sfu.Reception{Kind: webrtc.RTPCodecTypeVideo, FractionLost: 0.5, First: true, Since: time.Second})
	q.ObserveReception(sfu.Reception{Kind: webrtc.RTPCodecTypeVideo, RTT: 30 * time.Millisecond})
	q.ObserveReception(sfu.Reception{Kind: webrtc.RTPCodecTypeAudio})
	require.Equal(t, uint64(2), histCount(t, q.loss[webrtc.RTPCodecTypeVideo]))
	require.Equal(t, uint64(1), histCount(t, q.loss[webrtc.RTPCodecTypeAudio]))
	require.Equal(t, uint64(1), histCount(t, q.rtt[webrtc.RTPCodecTypeVideo]))
	require.Equal(t, uint64(0), histCount(t, q.rtt[webrtc.RTPCodecTypeAudio]))
	require.Equal(t, uint64(1), histCount(t, q.mediaStart))
}

func histCount(t *testing.T, o prometheus.Observer) uint64 {
	t.Helper()
	m, ok := o.(prometheus.Metric)
	require.True(t, ok)
	var out dto.Metric
	require.NoError(t, m.Write(&out))
	return out.GetHistogram().GetSampleCount()
}
