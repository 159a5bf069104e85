package signaling

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lectern/sfu"
)

// Bitrates are sampled every sampleEvery and averaged over the last
// sampleWindow samples (10 s): smooth enough to read, recent enough to act on.
const (
	sampleEvery  = 2 * time.Second
	sampleWindow = 5
)

// collector reads the hub and the engine's counters at scrape time, so the
// hot paths keep no Prometheus objects of their own.
type collector struct {
	s *Server

	classes, participants, tracks, publishers, subscribers, wsConns *prometheus.Desc
	subscribersDirect                                               *prometheus.Desc
	packetsIn, packetsFwd, packetsDropped, bytesIn, bytesOut        *prometheus.Desc
	nacks, keyframes, bitrateIn, bitrateOut                         *prometheus.Desc
	relaysIn, relaysOut                                             *prometheus.Desc
	studentsQuality, classesBad, recordings                         *prometheus.Desc
	classStudents, classBad                                         *prometheus.Desc // Options.MetricsClassLabels
}

func newCollector(s *Server) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("lectern_"+name, help, labels, nil)
	}
	return &collector{
		s:            s,
		classes:      d("classes", "Classes with someone in them on this node."),
		participants: d("participants", "Connected participants by role.", "role"),
		tracks:       d("tracks", "Live published tracks."),
		publishers:   d("publishers", "Live publisher peer connections."),
		subscribers:  d("subscribers", "Live subscriber peer connections."),
		subscribersDirect: d("subscribers_direct",
			"Live subscriber peer connections whose media is sealed and sent past pion's per-packet path."),
		wsConns:        d("ws_connections", "Open websocket connections."),
		packetsIn:      d("packets_in_total", "RTP packets received from publishers."),
		packetsFwd:     d("packets_forwarded_total", "RTP packets sent to subscribers."),
		packetsDropped: d("packets_dropped_total", "RTP packets dropped by full subscriber queues."),
		bytesIn:        d("bytes_in_total", "RTP bytes received from publishers."),
		bytesOut:       d("bytes_out_total", "RTP bytes sent to subscribers."),
		nacks:          d("nacks_served_total", "Retransmissions answered from the retransmission buffers."),
		keyframes:      d("keyframe_requests_total", "Keyframe requests sent to publishers, after merging."),
		bitrateIn:      d("bitrate_in_bps", "Received media bitrate over the last 10 s, bits per second."),
		bitrateOut:     d("bitrate_out_bps", "Sent media bitrate over the last 10 s, bits per second."),
		relaysIn:       d("relays_in", "Streams this node pulls from other nodes of a cluster, one peer connection each."),
		relaysOut:      d("relays_out", "Peer connections over which other nodes of a cluster pull this node's streams."),
		studentsQuality: d("students_quality",
			"Students by the verdict on their latest receiver reports: good, weak or bad (docs/deploy.md).", "verdict"),
		recordings: d("recordings_active", "Classes being recorded on this node."),
		classStudents: d("class_students",
			"Students of a class on this node, for the largest classes only (metrics_class_labels).", "room"),
		classBad: d("class_bad_students",
			"Students of a class on this node in bad quality, for the largest classes only (metrics_class_labels).", "room"),
		classesBad: d("classes_bad_quality",
			"Classes on this node where at least a quarter of the students with a verdict are in bad quality."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.classes, c.participants, c.tracks, c.publishers, c.subscribers, c.subscribersDirect, c.wsConns,
		c.packetsIn, c.packetsFwd, c.packetsDropped, c.bytesIn, c.bytesOut,
		c.nacks, c.keyframes, c.bitrateIn, c.bitrateOut, c.relaysIn, c.relaysOut,
		c.studentsQuality, c.classesBad, c.recordings, c.classStudents, c.classBad,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	hs := c.s.hub.stats()
	gauge(c.classes, float64(hs.classes))
	for role, n := range hs.roles {
		gauge(c.participants, float64(n), role)
	}
	gauge(c.wsConns, float64(c.s.connCount()))
	gauge(c.relaysIn, float64(hs.relaysIn))
	gauge(c.relaysOut, float64(hs.relaysOut))
	st := c.s.engineStats()
	gauge(c.tracks, float64(st.Tracks))
	gauge(c.publishers, float64(st.Publishers))
	gauge(c.subscribers, float64(st.Subscribers))
	gauge(c.subscribersDirect, float64(st.SubscribersDirect))
	counter(c.packetsIn, st.PacketsIn)
	counter(c.packetsFwd, st.PacketsForwarded)
	counter(c.packetsDropped, st.PacketsDropped)
	counter(c.bytesIn, st.BytesIn)
	counter(c.bytesOut, st.BytesOut)
	counter(c.nacks, st.NACKsServed)
	counter(c.keyframes, st.KeyframeRequests)
	in, out := c.s.rates.get()
	gauge(c.bitrateIn, in)
	gauge(c.bitrateOut, out)
	qs := c.s.hub.qualityStats(time.Now())
	for v, n := range qs.students {
		gauge(c.studentsQuality, float64(n), v)
	}
	gauge(c.classesBad, float64(qs.badClasses))
	for _, cq := range largestClasses(qs.classes, c.s.opts.MetricsClassLabels) {
		gauge(c.classStudents, float64(cq.students), string(cq.id))
		gauge(c.classBad, float64(cq.bad), string(cq.id))
	}
	gauge(c.recordings, float64(c.s.rec.activeCount()))
}

func (s *Server) engineStats() sfu.Stats {
	if s.opts.Engine == nil {
		return sfu.Stats{}
	}
	return s.opts.Engine.Stats()
}

// sampleBitrates runs until Shutdown, sampling the byte counters and
// judging the students for their teachers (quality_notify.go).
func (s *Server) sampleBitrates() {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	s.rates.add(time.Now(), s.engineStats())
	for {
		select {
		case now := <-t.C:
			s.rates.add(now, s.engineStats())
			s.hub.notifyQuality(now)
			s.moveDraining()
		case <-s.rates.done:
			return
		}
	}
}

type byteSample struct {
	at      time.Time
	in, out uint64
}

// bitrates keeps the last byte counter samples.
type bitrates struct {
	mu       sync.Mutex // leaf lock
	samples  []byteSample
	done     chan struct{}
	stopOnce sync.Once
}

func newBitrates() *bitrates { return &bitrates{done: make(chan struct{})} }

func (b *bitrates) stop() { b.stopOnce.Do(func() { close(b.done) }) }

func (b *bitrates) add(at time.Time, st sfu.Stats) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.samples = append(b.samples, byteSample{at: at, in: st.BytesIn, out: st.BytesOut})
	if len(b.samples) > sampleWindow+1 {
		b.samples = append(b.samples[:0], b.samples[len(b.samples)-sampleWindow-1:]...)
	}
}

// get returns the bitrates in and out, in bits per second, over the window.
func (b *bitrates) get() (in, out float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.samples) < 2 {
		return 0, 0
	}
	first, last := b.samples[0], b.samples[len(b.samples)-1]
	secs := last.at.Sub(first.at).Seconds()
	if secs <= 0 {
		return 0, 0
	}
	return rate(first.in, last.in, secs), rate(first.out, last.out, secs)
}

func rate(from, to uint64, secs float64) float64 {
	if to < from {
		return 0
	}
	return float64(to-from) * 8 / secs
}
