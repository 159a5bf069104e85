package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	ten := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		name   string
		sorted []float64
		q      float64
		want   float64
	}{
		{"empty", nil, 0.5, 0},
		{"one value", []float64{7}, 0.99, 7},
		{"median of ten", ten, 0.5, 5},
		{"p95 of ten", ten, 0.95, 10},
		{"p90 of ten", ten, 0.9, 9},
		{"p0 is the minimum", ten, 0, 1},
		{"p100 is the maximum", ten, 1, 10},
		{"median of two is the lower", []float64{1, 100}, 0.5, 1},
		{"p99 of a hundred", seq(1, 100), 0.99, 99},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, percentile(tc.sorted, tc.q), tc.name)
	}
}

func seq(from, to int) []float64 {
	var out []float64
	for i := from; i <= to; i++ {
		out = append(out, float64(i))
	}
	return out
}

func TestSpreadOf(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := spreadOf(ds)
	require.Equal(t, Spread{Count: 100, P50: 50, P95: 95, P99: 99, Max: 100}, s)
	require.Equal(t, Spread{}, spreadOf(nil))
}

func TestMedian(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, median(tc.in), "%v", tc.in)
	}
}

func TestLossFraction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expected, received uint64
		want               float64
	}{
		{0, 0, 0},
		{100, 100, 0},
		{100, 99, 0.01},
		{1000, 995, 0.005},
		{100, 0, 1},
		{100, 120, 0}, // duplicates are not negative loss
	}
	for _, tc := range tests {
		require.InDelta(t, tc.want, lossFraction(tc.expected, tc.received), 1e-12, "%d/%d", tc.received, tc.expected)
	}
}

func TestSeqCounter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		seqs     []uint16
		expected uint64
		received uint64
	}{
		{"none", nil, 0, 0},
		{"in order", []uint16{10, 11, 12, 13}, 4, 4},
		{"one lost", []uint16{10, 11, 13}, 4, 3},
		{"wraps", []uint16{65534, 65535, 0, 1}, 4, 4},
		{"loss across the wrap", []uint16{65534, 0, 2}, 5, 3},
		{"reordered", []uint16{10, 12, 11, 13}, 4, 4},
		{"reordered before the first", []uint16{10, 9, 11}, 3, 3},
		{"late packet across the wrap", []uint16{65535, 1, 0}, 3, 3},
	}
	for _, tc := range tests {
		var c seqCounter
		for _, s := range tc.seqs {
			c.add(s)
		}
		require.Equal(t, tc.expected, c.expected(), tc.name)
		require.Equal(t, tc.received, c.received, tc.name)
	}
}

func TestHistogramBuckets(t *testing.T) {
	t.Parallel()
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 65, 1000, 12345, 1 << 20, 1<<40 + 7, math.MaxUint64} {
		i := bucketOf(v)
		require.Less(t, i, nBuckets, "value %d", v)
		require.GreaterOrEqual(t, bucketTop(i), v, "value %d: bucket %d", v, i)
		if i > 0 {
			require.Less(t, bucketTop(i-1), v, "value %d: bucket %d is not the first that holds it", v, i)
		}
	}
	for i := 0; i < nBuckets; i++ {
		require.Equal(t, i, bucketOf(bucketTop(i)), "bucket %d", i)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []uint64
		q      float64
		want   float64
	}{
		{"uniform p50", uniform(1, 10000), 0.50, 5000},
		{"uniform p99", uniform(1, 10000), 0.99, 9900},
		{"small values are exact", uniform(1, 20), 0.5, 10},
		{"one outlier sets max, not p99", append(repeat(1000, 999), 500000), 0.99, 1000},
	}
	for _, tc := range tests {
		var h histogram
		for _, v := range tc.values {
			h.record(v)
		}
		got := float64(h.snapshot().quantile(tc.q))
		// Quantiles are within one bucket: 1/32 of the value.
		require.InEpsilon(t, tc.want, got, 1.0/subCount, tc.name)
		require.GreaterOrEqual(t, got, tc.want, "%s: the bucket's top is reported", tc.name)
	}
	var h histogram
	for _, v := range append(repeat(1000, 999), 500000) {
		h.record(v)
	}
	s := h.snapshot().spread()
	require.Equal(t, 1000, s.Count)
	require.InDelta(t, 500.0, s.Max, 1e-9, "max is exact, in ms")
	require.Equal(t, Spread{}, (&histCounts{}).spread())
}

func TestHistogramDifference(t *testing.T) {
	t.Parallel()
	var h histogram
	for _, v := range repeat(100, 50) {
		h.record(v)
	}
	before := h.snapshot()
	for _, v := range repeat(9000, 10) {
		h.record(v)
	}
	d := h.snapshot().minus(before)
	require.Equal(t, uint64(10), d.total())
	require.InEpsilon(t, 9000, float64(d.quantile(0.5)), 1.0/subCount)
}

func uniform(from, to uint64) []uint64 {
	var out []uint64
	for v := from; v <= to; v++ {
		out = append(out, v)
	}
	return out
}

func repeat(v uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestSendLogBounded(t *testing.T) {
	t.Parallel()
	l := newSendLog()
	h := l.hash([]byte("packet one"))
	require.NotEqual(t, h, l.hash([]byte("packet two")))
	l.put(h, sendRecord{at: 1, idx: 1})
	r, ok := l.get(h)
	require.True(t, ok)
	require.Equal(t, sendRecord{at: 1, idx: 1}, r)
	// A record survives one rotation of its shard and is gone after two.
	l.put(h+sendShards, sendRecord{at: sendSpan + 1, idx: 2})
	_, ok = l.get(h)
	require.True(t, ok, "kept for at least a span")
	l.put(h+2*sendShards, sendRecord{at: 2*sendSpan + 2, idx: 3})
	_, ok = l.get(h)
	require.False(t, ok, "dropped after two spans")
	require.Equal(t, 2, l.size())
}

// TestStudentAccounting plays a publisher's record of 200 video packets
// and a student that receives them with gaps, a duplicate and primed
// packets, and checks loss and latency.
func TestStudentAccounting(t *testing.T) {
	t.Parallel()
	env := &runEnv{sends: newSendLog(), latency: &histogram{}}
	payload := func(i int) []byte { return []byte{0x10, 0x01, byte(i), byte(i >> 8), 0xAB} }
	const ms = int64(time.Millisecond)
	for i := 1; i <= 200; i++ {
		env.sends.put(env.sends.hash(payload(i)), sendRecord{at: int64(i) * 10 * ms, idx: uint64(i)})
	}
	s := &student{env: env}
	first := int64(1000) * ms // packets 1..99 were sent before: primed, not timed
	for i := 50; i <= 200; i++ {
		if i == 120 || i == 121 || i == 150 {
			continue // lost
		}
		at := first
		if i >= 100 {
			at = int64(i)*10*ms + 2*ms // live: 2 ms after sending
		}
		s.onVideo(payload(i), at, first)
	}
	s.onVideo(payload(160), 1700*ms, first) // a retransmission of a packet already received
	s.onVideo([]byte("not sent by the publisher"), 1700*ms, first)

	expected, lost := s.videoLoss()
	require.Equal(t, uint64(151), expected, "packets 50 to 200")
	require.Equal(t, uint64(3), lost)
	require.Equal(t, uint64(1), s.dups.Load())
	require.Equal(t, uint64(1), s.unmatched.Load())
	sp := env.latency.snapshot().spread()
	require.Equal(t, 101-3, sp.Count, "only packets sent after the first arrival are timed")
	require.InEpsilon(t, 2.0, sp.P99, 1.0/subCount)
	require.InEpsilon(t, 2.0, sp.Max, 1e-9)
}

func TestParseProc(t *testing.T) {
	t.Parallel()
	stat := []byte("4242 (lectern (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 1000 123456789 6000 rest\n")
	cpu, err := parseStatCPU(stat)
	require.NoError(t, err)
	require.Equal(t, 3250*time.Millisecond, cpu, "(250 + 75) ticks of 10 ms")
	_, err = parseStatCPU([]byte("4242 (short) S 1 2"))
	require.Error(t, err)
	_, err = parseStatCPU([]byte("no parenthesis"))
	require.Error(t, err)

	rss, err := parseStatusRSS([]byte("Name:\tlectern\nVmPeak:\t  9999 kB\nVmRSS:\t   51200 kB\nThreads:\t12\n"))
	require.NoError(t, err)
	require.Equal(t, int64(50<<20), rss)
	_, err = parseStatusRSS([]byte("Name:\tkthreadd\n"))
	require.Error(t, err)

	busy, err := parseMachineBusy([]byte("cpu  100 5 50 9000 40 3 2 1 0 0\ncpu0 50 2 25 4500 20 1 1 0 0 0\n"))
	require.NoError(t, err)
	require.Equal(t, 1610*time.Millisecond, busy, "user, nice, system, irq, softirq, steal: 161 ticks")
	_, err = parseMachineBusy([]byte("intr 1 2 3"))
	require.Error(t, err)

	self, err := readProc(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, self.rss)
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Options)
		bad  string // "" when valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"no students", func(o *Options) { o.Students = 0 }, "--students"},
		{"too many students", func(o *Options) { o.Students = maxStudents + 1 }, "--students"},
		{"zero join rate", func(o *Options) { o.JoinRate = 0 }, "--join-rate"},
		{"short duration", func(o *Options) { o.Duration = time.Millisecond }, "--duration"},
		{"unknown transport", func(o *Options) { o.Transport = "sip" }, "--transport"},
		{"unknown publisher", func(o *Options) { o.Publisher = "rtmp" }, "--publisher"},
		{"bad sweep", func(o *Options) { o.Sweep, o.SweepMax = true, 10 }, "--sweep-start"},
		{"url without tokens", func(o *Options) { o.URL = "http://127.0.0.1:1" }, "--url needs"},
		{"url with tokens", func(o *Options) { o.URL, o.TeacherToken, o.StudentToken = "http://h", "t", "s" }, ""},
		{"url with a secret", func(o *Options) { o.URL, o.SecretFile = "https://h:8443", "/x" }, ""},
		{"one token only", func(o *Options) { o.URL, o.TeacherToken, o.Data = "http://h", "t", "/d" }, "go together"},
		{"shared token over ws", func(o *Options) {
			o.URL, o.TeacherToken, o.StudentToken, o.Transport = "http://h", "t", "s", TransportWS
		}, "one token per student"},
		{"bad url", func(o *Options) { o.URL, o.Data = "ftp://h", "/d" }, "--url"},
		{"tokens without url", func(o *Options) { o.TeacherToken = "t" }, "go with --url"},
	}
	for _, tc := range tests {
		o := DefaultOptions()
		tc.edit(&o)
		err := o.Validate()
		if tc.bad == "" {
			require.NoError(t, err, tc.name)
			continue
		}
		require.ErrorIs(t, err, ErrUsage, tc.name)
		require.Contains(t, err.Error(), tc.bad, tc.name)
	}
}

func TestMainUsage(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, Main(context.Background(), []string{"--help"}, &out, &errOut))
	require.Contains(t, errOut.String(), "--students")
	require.NotContains(t, errOut.String(), "cpuprofile", "hidden flags stay hidden")
	errOut.Reset()
	require.Equal(t, exitUsage, Main(context.Background(), []string{"--students", "0"}, &out, &errOut))
	require.Contains(t, errOut.String(), "--students 0")
	require.Equal(t, exitUsage, Main(context.Background(), []string{"extra"}, &out, &errOut))
	require.Empty(t, out.String())
}

func TestLoadClip(t *testing.T) {
	t.Parallel()
	c, err := loadClip(DefaultIVF, DefaultOgg)
	require.NoError(t, err)
	require.Equal(t, 1280, c.width)
	require.Equal(t, 720, c.height)
	require.InDelta(t, 30, c.fps, 0.01)
	require.Len(t, c.video, 300)
	keys, total := 0, 0
	for i, f := range c.video {
		total += len(f.Data)
		if f.Key {
			keys++
			require.Zero(t, i%60, "keyframes every 60 frames, not at frame %d", i)
		}
	}
	require.Equal(t, 5, keys)
	bitrate := float64(total) * 8 / 10 / 1e6
	require.InDelta(t, 1.5, bitrate, 0.15, "about 1.5 Mbit/s")
	require.NotEmpty(t, c.audio)
	_, err = loadClip("testdata/bench/missing.ivf", "")
	require.ErrorIs(t, err, ErrMedia)
}

func TestReports(t *testing.T) {
	t.Parallel()
	res := &Result{
		Target: "local <server>", Transport: TransportWHEP, Students: 2, Connected: 2, Window: 2,
		Latency: Spread{Count: 10, P50: 1, P95: 2, P99: 3, Max: 4},
		Series: []Sample{
			{T: 1, PublishedKbps: 1500},
			{T: 2, Connected: 2, PublishedKbps: 1500, MedianKbps: 1490, MinKbps: 1480, LatencyP50: 1, LatencyP99: 3, LatencyCount: 5},
			{T: 3, Connected: 2, PublishedKbps: 1510, MedianKbps: 1500, MinKbps: 1495, LatencyP50: 1, LatencyP99: 2, LatencyCount: 5},
		},
	}
	sr := &SweepResult{Largest: 2, Steps: []*Result{res}}
	for _, tc := range []struct {
		name string
		res  *Result
		sr   *SweepResult
	}{{"run", res, nil}, {"sweep", nil, sr}} {
		var b bytes.Buffer
		require.NoError(t, writeHTML(&b, tc.res, tc.sr), tc.name)
		svgs, lines := parseHTML(t, b.Bytes())
		require.GreaterOrEqual(t, svgs, 4, tc.name)
		require.Positive(t, lines, tc.name)
		require.Contains(t, b.String(), "local &lt;server&gt;", "%s: text is escaped", tc.name)
	}
	var b bytes.Buffer
	require.NoError(t, writeJSON(&b, res))
	var back Result
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	require.Equal(t, res.Latency, back.Latency)
	require.Len(t, back.Series, 3)
}

// parseHTML checks that page parses and counts its charts and lines.
func parseHTML(t *testing.T, page []byte) (svgs, lines int) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(page))
	d.Strict, d.AutoClose, d.Entity = false, xml.HTMLAutoClose, xml.HTMLEntity
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return svgs, lines
		}
		require.NoError(t, err)
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "svg":
				svgs++
			case "polyline":
				for _, a := range se.Attr {
					if a.Name.Local == "points" && strings.Count(a.Value, ",") >= 1 {
						lines++
					}
				}
			}
		}
	}
}
