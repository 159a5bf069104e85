package signaling

import (
	"sort"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"lectern/auth"
	"lectern/sfu"
)

// A student's quality verdict is its worst down track's, judged on the
// latest receiver report (RFC 3550 6.4.1) of each: "bad" when video at
// that loss, delay or jitter freezes or breaks up, "weak" when it starts
// to show. Loss is the report's fraction lost since the previous one.
const (
	weakLoss, badLoss     = 0.02, 0.10
	weakRTT, badRTT       = 250 * time.Millisecond, 500 * time.Millisecond
	weakJitter, badJitter = 30 * time.Millisecond, 100 * time.Millisecond
	// receptionFresh: an older report says nothing of now (receivers
	// report about every second).
	receptionFresh = 5 * time.Second
	// badClassShare: a class is in bad quality when at least this share
	// of its students with a verdict are bad.
	badClassShare = 0.25
)

// Verdicts, the values of the verdict label.
const (
	verdictGood = "good"
	verdictWeak = "weak"
	verdictBad  = "bad"
)

// quality holds the histograms fed as events happen: the engine's
// receiver reports (it is the engine's sfu.ReceptionObserver) and joins.
// No histogram has a label per student or per class.
type quality struct {
	loss, jitter, rtt map[webrtc.RTPCodecType]prometheus.Observer
	mediaStart        prometheus.Histogram
	join              prometheus.Histogram
	collectors        []prometheus.Collector
}

func newQuality() *quality {
	vec := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lectern_" + name, Help: help, Buckets: buckets,
		}, []string{"kind"})
	}
	loss := vec("reception_loss_ratio", "Fraction lost in each receiver report of the students' tracks (RFC 3550 6.4.1).",
		[]float64{0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1})
	jitter := vec("reception_jitter_seconds", "Interarrival jitter in each receiver report of the students' tracks.",
		[]float64{0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5})
	rtt := vec("reception_rtt_seconds", "Round trip time from each receiver report of the students' tracks.",
		[]float64{0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2})
	q := &quality{
		loss: map[webrtc.RTPCodecType]prometheus.Observer{}, jitter: map[webrtc.RTPCodecType]prometheus.Observer{},
		rtt: map[webrtc.RTPCodecType]prometheus.Observer{},
		mediaStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lectern_media_start_seconds",
			Help:    "From a track's subscription to the receiver's first report of it: the wait for a student's media.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20},
		}),
		join: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lectern_join_seconds",
			Help:    "From a websocket's join message to its welcome (or redirect).",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}),
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		q.loss[k], q.jitter[k], q.rtt[k] = loss.WithLabelValues(k.String()), jitter.WithLabelValues(k.String()), rtt.WithLabelValues(k.String())
	}
	q.collectors = []prometheus.Collector{loss, jitter, rtt, q.mediaStart, q.join}
	return q
}

// ObserveReception implements sfu.ReceptionObserver.
func (q *quality) ObserveReception(r sfu.Reception) {
	loss, ok := q.loss[r.Kind]
	if !ok {
		return
	}
	loss.Observe(r.FractionLost)
	q.jitter[r.Kind].Observe(r.Jitter.Seconds())
	if r.RTT > 0 {
		q.rtt[r.Kind].Observe(r.RTT.Seconds())
	}
	if r.First {
		q.mediaStart.Observe(r.Since.Seconds())
	}
}

// verdict judges one report.
func verdict(r sfu.Reception) string {
	switch {
	case r.FractionLost >= badLoss || r.RTT >= badRTT || r.Jitter >= badJitter:
		return verdictBad
	case r.FractionLost >= weakLoss || r.RTT >= weakRTT || r.Jitter >= weakJitter:
		return verdictWeak
	}
	return verdictGood
}

var verdictRank = map[string]int{"": 0, verdictGood: 1, verdictWeak: 2, verdictBad: 3}

// studentVerdict is the worst fresh verdict of downs; "" when none has a
// fresh report.
func studentVerdict(downs []*sfu.DownTrack, now time.Time) string {
	worst := ""
	for _, d := range downs {
		r, ok := d.Reception()
		if !ok || now.Sub(r.At) > receptionFresh {
			continue
		}
		if v := verdict(r); verdictRank[v] > verdictRank[worst] {
			worst = v
		}
	}
	return worst
}

// qualityStats are the students of this node by verdict and the classes
// in bad quality, computed at scrape time, with each class's figures.
type qualityStats struct {
	students   map[string]int
	badClasses int
	classes    []classQuality
}

// classQuality is one class's students on this node and how many are bad.
type classQuality struct {
	id            sfu.RoomID
	students, bad int
}

// qualityStats reads the latest reports of every student's down tracks.
// The down tracks are collected under the locks and read after, since no
// sfu method is called with a lock held.
func (h *hub) qualityStats(now time.Time) qualityStats {
	st := qualityStats{students: map[string]int{verdictGood: 0, verdictWeak: 0, verdictBad: 0}}
	for _, class := range h.studentDownTracks() {
		judged, bad := 0, 0
		for _, downs := range class.students {
			v := studentVerdict(downs, now)
			if v == "" {
				continue
			}
			st.students[v]++
			judged++
			if v == verdictBad {
				bad++
			}
		}
		if bad > 0 && float64(bad) >= badClassShare*float64(judged) {
			st.badClasses++
		}
		st.classes = append(st.classes, classQuality{id: class.id, students: len(class.students), bad: bad})
	}
	return st
}

// largestClasses are the n classes with the most students (ties by id,
// so the set is stable between scrapes); none when n is 0.
func largestClasses(cs []classQuality, n int) []classQuality {
	if n <= 0 {
		return nil
	}
	sort.Slice(cs, func(i, j int) bool {
		return cs[i].students > cs[j].students || cs[i].students == cs[j].students && cs[i].id < cs[j].id
	})
	return cs[:min(n, len(cs))]
}

// classDowns are a class's local students, each as its down tracks.
type classDowns struct {
	id       sfu.RoomID
	pids     []sfu.ParticipantID
	students [][]*sfu.DownTrack
}

// studentDownTracks lists, per class, each local student's down tracks:
// its websocket's subscriptions and its WHEP sessions. The peer
// connections are gathered under the locks, their down tracks read after.
func (h *hub) studentDownTracks() []classDowns {
	var classes [][]*studentPeers
	var ids []sfu.RoomID
	h.mu.Lock()
	for _, r := range h.rooms {
		r.mu.Lock()
		classes = append(classes, r.studentPeersLocked())
		r.mu.Unlock()
		ids = append(ids, r.id)
	}
	h.mu.Unlock()
	out := make([]classDowns, len(classes))
	for i, list := range classes {
		out[i].id = ids[i]
		for _, s := range list {
			var downs []*sfu.DownTrack
			for _, sub := range s.subs {
				downs = append(downs, sub.DownTracks()...)
			}
			for _, v := range s.viewers {
				downs = append(downs, v.DownTracks()...)
			}
			out[i].students = append(out[i].students, downs)
			out[i].pids = append(out[i].pids, s.pid)
		}
	}
	return out
}

// studentPeers are one student's receiving peer connections in a class.
type studentPeers struct {
	pid     sfu.ParticipantID
	subs    []*sfu.Subscriber
	viewers []*sfu.Viewer
}

// studentPeersLocked lists the class's students, in the order met, with
// their subscriptions and WHEP viewers. r.mu is held.
func (r *room) studentPeersLocked() []*studentPeers {
	by := map[sfu.ParticipantID]*studentPeers{}
	var list []*studentPeers
	get := func(pid sfu.ParticipantID) *studentPeers {
		if by[pid] == nil {
			by[pid] = &studentPeers{pid: pid}
			list = append(list, by[pid])
		}
		return by[pid]
	}
	for _, m := range r.members {
		if m.info.Role != string(auth.RoleStudent) || m.conn.headless() {
			continue
		}
		st := get(m.conn.pid)
		for _, sub := range m.conn.subs {
			if sub.sub != nil {
				st.subs = append(st.subs, sub.sub)
			}
		}
	}
	for hc, x := range r.headless {
		if hc.claims.Role == auth.RoleStudent && x.viewer != nil {
			get(hc.pid).viewers = append(get(hc.pid).viewers, x.viewer)
		}
	}
	return list
}
