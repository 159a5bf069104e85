package bench

import (
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
)

// Spread summarises a set of durations, in milliseconds.
type Spread struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// percentile is the nearest-rank percentile (the smallest value with at
// least q of the values at or below it) of sorted values; 0 when empty.
func percentile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(n)))
	return sorted[min(max(rank, 1), n)-1]
}

// spreadOf summarises durations exactly (they are few: one per student).
func spreadOf(ds []time.Duration) Spread {
	ms := make([]float64, len(ds))
	for i, d := range ds {
		ms[i] = float64(d) / float64(time.Millisecond)
	}
	slices.Sort(ms)
	s := Spread{Count: len(ms), P50: percentile(ms, 0.50), P95: percentile(ms, 0.95), P99: percentile(ms, 0.99)}
	if len(ms) > 0 {
		s.Max = ms[len(ms)-1]
	}
	return s
}

// median of values (the lower middle one for an even count), 0 when empty.
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return percentile(s, 0.5)
}

// lossFraction is the share of expected packets that never arrived; more
// arrivals than expected (duplicates) count as no loss.
func lossFraction(expected, received uint64) float64 {
	if expected == 0 || received >= expected {
		return 0
	}
	return float64(expected-received) / float64(expected)
}

// histogram counts microsecond values in log-linear buckets: exact below
// 2^subBits, then 2^subBits buckets per power of two, so a quantile is
// within 1/2^subBits (3.1%) of the true value. Record is lock-free: the
// students' reader goroutines share one histogram.
type histogram struct {
	counts [nBuckets]atomic.Uint64
	max    atomic.Uint64
}

const (
	subBits  = 5
	subCount = 1 << subBits
	nBuckets = (64 - subBits + 1) * subCount
)

// bucketOf maps v to its bucket index.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v >> e is in [subCount, 2*subCount)
	return (e+1)*subCount + int(v>>e) - subCount
}

// bucketTop is the largest value in bucket i.
func bucketTop(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	e := i/subCount - 1
	m := uint64(i%subCount + subCount)
	return (m+1)<<e - 1
}

func (h *histogram) record(us uint64) {
	h.counts[bucketOf(us)].Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// snapshot copies the counts (each one atomically; the set is not one
// instant, which is fine for counts that only grow).
func (h *histogram) snapshot() *histCounts {
	c := &histCounts{max: h.max.Load()}
	for i := range h.counts {
		c.n[i] = h.counts[i].Load()
	}
	return c
}

// histCounts is a plain copy of a histogram, for quantiles and differences.
type histCounts struct {
	n   [nBuckets]uint64
	max uint64 // the largest value ever recorded (not per difference)
}

func (c *histCounts) total() uint64 {
	var t uint64
	for _, n := range c.n {
		t += n
	}
	return t
}

// minus returns the counts recorded since prev. Its max is the top of its
// highest bucket (capped at the exact maximum of all time), within 3%.
func (c *histCounts) minus(prev *histCounts) *histCounts {
	d := &histCounts{}
	for i := range c.n {
		if d.n[i] = c.n[i] - prev.n[i]; d.n[i] != 0 {
			d.max = min(bucketTop(i), c.max)
		}
	}
	return d
}

// quantile is the nearest-rank quantile in microseconds: the top of the
// bucket holding it, capped at the largest recorded value.
func (c *histCounts) quantile(q float64) uint64 {
	total := c.total()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	rank = min(max(rank, 1), total)
	var seen uint64
	for i, n := range c.n {
		if seen += n; seen >= rank {
			return min(bucketTop(i), c.max)
		}
	}
	return c.max
}

// spread summarises the histogram in milliseconds; Max is the exact maximum.
func (c *histCounts) spread() Spread {
	ms := func(us uint64) float64 { return float64(us) / 1000 }
	total := c.total()
	if total == 0 {
		return Spread{}
	}
	return Spread{
		Count: int(min(total, math.MaxInt)), P50: ms(c.quantile(0.5)), P95: ms(c.quantile(0.95)),
		P99: ms(c.quantile(0.99)), Max: ms(c.max),
	}
}

// seqCounter counts loss in one RTP stream from its sequence numbers
// (RFC 3550 appendix A.3): expected is the extended highest sequence
// number received minus the first, plus one.
type seqCounter struct {
	started  bool
	first    uint64
	highest  uint64 // extended: cycles << 16 | seq
	received uint64
}

func (s *seqCounter) add(seq uint16) {
	s.received++
	if !s.started {
		s.started = true
		s.first, s.highest = uint64(seq), uint64(seq)
		return
	}
	// The signed 16-bit distance places seq next to the highest seen,
	// across a wrap in either direction.
	d := int64(int16(seq - uint16(s.highest)))
	if ext := int64(s.highest) + d; d > 0 {
		s.highest = uint64(ext)
	} else if ext < int64(s.first) && ext >= 0 {
		s.first = uint64(ext) // reordered before the first one seen
	}
}

// expected is how many packets the sender sent between the first and the
// highest received.
func (s *seqCounter) expected() uint64 {
	if !s.started {
		return 0
	}
	return s.highest - s.first + 1
}
