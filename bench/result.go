package bench

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"time"
)

// Result is the report of one run. Rates are over the measured period
// (Window): from just after the last student joined to the end.
type Result struct {
	Target    string    `json:"target"`
	Transport string    `json:"transport"`
	Publisher string    `json:"publisher"`
	Room      string    `json:"room"`
	Students  int       `json:"students"`
	JoinRate  float64   `json:"join_rate_per_s"`
	Window    float64   `json:"window_s"`
	Started   time.Time `json:"started"`
	Media     Media     `json:"media"`
	Published Published `json:"published"`

	Connected int      `json:"connected"`
	Failed    int      `json:"failed"`
	Errors    []string `json:"errors,omitempty"`

	JoinFirstPacket   Spread  `json:"join_first_packet"`
	JoinFirstKeyframe Spread  `json:"join_first_keyframe"`
	Bitrate           Bitrate `json:"bitrate"`
	Loss              Loss    `json:"loss"`
	// Latency is the forwarding latency of live video packets over the
	// measured period: arrival at a student minus the publisher's send
	// time, on one clock. LatencyAll also covers the joins.
	Latency    Spread       `json:"latency"`
	LatencyAll Spread       `json:"latency_all"`
	Server     *ServerUsage `json:"server,omitempty"`
	Tool       ToolUsage    `json:"tool"`
	Machine    MachineUsage `json:"machine"`
	Series     []Sample     `json:"series"`
	// Held: every student connected, video loss at most 1% and p99
	// latency at most 200 ms over the measured period (the sweep's
	// criteria).
	Held bool `json:"held"`
}

// Media describes the clip.
type Media struct {
	Video string  `json:"video"`
	Audio string  `json:"audio"`
	FPS   float64 `json:"fps"`
}

// Published is what the teacher sent over the measured period.
type Published struct {
	VideoKbps        float64 `json:"video_kbps"`
	AudioKbps        float64 `json:"audio_kbps"`
	VideoPackets     uint64  `json:"video_packets"`
	AudioPackets     uint64  `json:"audio_packets"`
	Frames           uint64  `json:"frames"`
	KeyframeRequests uint64  `json:"keyframe_requests"`
	SendErrors       uint64  `json:"send_errors"`
}

// Bitrate is what connected students received (RTP payload, video and
// audio), and the lowest and median share of the published bitrate.
type Bitrate struct {
	MedianKbps  float64 `json:"median_kbps"`
	MinKbps     float64 `json:"min_kbps"`
	MedianRatio float64 `json:"median_ratio"`
	MinRatio    float64 `json:"min_ratio"`
}

// Loss counts media that never arrived. Video loss compares the packets a
// student received with those the publisher sent (so packets the server
// skipped count, which RTP sequence numbers rewritten by an SFU would
// hide): over the measured period (Video, VideoMaxStudent, VideoExpected,
// VideoLost) and over the whole run from each student's first packet,
// joins included (VideoAll). Audio loss comes from sequence-number gaps
// over the whole run.
type Loss struct {
	Video           float64 `json:"video"`
	VideoMaxStudent float64 `json:"video_max_student"`
	VideoExpected   uint64  `json:"video_expected"`
	VideoLost       uint64  `json:"video_lost"`
	VideoAll        float64 `json:"video_all"`
	Audio           float64 `json:"audio"`
	// Unmatched video packets were not in the send log: changed payloads,
	// or arrivals more than a few seconds late.
	Unmatched  uint64 `json:"unmatched"`
	Duplicates uint64 `json:"duplicates"`
}

// ServerUsage is the server process's use of the machine (local servers only).
type ServerUsage struct {
	PID                   int     `json:"pid"`
	CPUPercent            float64 `json:"cpu_percent"` // of one core
	CPUPerStudentSecondMs float64 `json:"cpu_ms_per_student_second"`
	CPUPerPacketUs        float64 `json:"cpu_us_per_delivered_packet"`
	DeliveredPackets      uint64  `json:"delivered_packets"`
	RSSBeforeMB           float64 `json:"rss_before_mb"`
	RSSAfterMB            float64 `json:"rss_after_mb"`
	RSSPerStudentKB       float64 `json:"rss_kb_per_student"`
}

// ToolUsage is the tool's own CPU (publisher and students); near the
// machine's capacity, the figures say more about the tool than the server.
type ToolUsage struct {
	CPUPercent    float64 `json:"cpu_percent"` // of one core
	CPUPercentMax float64 `json:"cpu_percent_max"`
	Cores         int     `json:"cores"`
	Saturated     bool    `json:"saturated"`
}

// MachineUsage is the whole machine's CPU over the measured period; Other
// is what neither the server nor the tool used (other processes), which
// disturbs the figures when it is large.
type MachineUsage struct {
	CPUPercent   float64 `json:"cpu_percent"` // of one core
	OtherPercent float64 `json:"other_percent"`
}

// Sample is one second of a run.
type Sample struct {
	T             float64 `json:"t"`
	Connected     int     `json:"connected"`
	PublishedKbps float64 `json:"published_kbps"`
	MedianKbps    float64 `json:"median_kbps"`
	MinKbps       float64 `json:"min_kbps"`
	LatencyP50    float64 `json:"latency_p50_ms"`
	LatencyP99    float64 `json:"latency_p99_ms"`
	LatencyCount  uint64  `json:"latency_count"`
	ServerCPU     float64 `json:"server_cpu_percent"`
	ServerRSSMB   float64 `json:"server_rss_mb"`
	ToolCPU       float64 `json:"tool_cpu_percent"`
	OtherCPU      float64 `json:"other_cpu_percent"`
}

// saturatedShare: a tool using more than this share of the machine's
// cores may be the bottleneck itself.
const saturatedShare = 0.6

const mb = 1 << 20

func kbps(bytes uint64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(bytes) * 8 / seconds / 1000
}

func cpuPercent(d time.Duration, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return d.Seconds() / seconds * 100
}

// sample records one second.
func (s *sampler) sample() {
	r := s.r
	cur := r.snapshot()
	dt := float64(cur.at-s.last.at) / 1e9
	d := cur.lat.minus(s.last.lat)
	smp := Sample{
		T:             float64(cur.at-r.t0) / 1e9,
		PublishedKbps: kbps(cur.pubBytes-s.last.pubBytes, dt),
		LatencyP50:    float64(d.quantile(0.5)) / 1000,
		LatencyP99:    float64(d.quantile(0.99)) / 1000,
		LatencyCount:  d.total(),
		ToolCPU:       cpuPercent(cur.tool-s.last.tool, dt),
	}
	var rates []float64
	for i, st := range r.students {
		first := st.firstPacket.Load()
		if first == 0 || st.Err() != nil {
			continue
		}
		smp.Connected++
		if first <= s.last.at {
			rates = append(rates, kbps(cur.bytes[i]-s.last.bytes[i], dt))
		}
	}
	if len(rates) > 0 {
		smp.MedianKbps, smp.MinKbps = median(rates), slices.Min(rates)
	}
	if cur.serverOK && s.last.serverOK {
		smp.ServerCPU = cpuPercent(cur.server.cpu-s.last.server.cpu, dt)
		smp.ServerRSSMB = float64(cur.server.rss) / mb
	}
	if cur.machine.ok && s.last.machine.ok {
		smp.OtherCPU = max(0, cpuPercent(cur.machine.busy-s.last.machine.busy, dt)-smp.ServerCPU-smp.ToolCPU)
	}
	s.samples = append(s.samples, smp)
	s.last = cur
}

// summarize turns the counters into a Result; before is read just before
// the first join, w0 and w1 bound the measured period.
func (r *runner) summarize(before, w0, w1 snap, samples []Sample) *Result {
	o := r.env.opts
	win := float64(w1.at-w0.at) / 1e9
	res := &Result{
		Target: r.target.what, Transport: o.Transport, Publisher: o.Publisher, Room: o.Room,
		Students: o.Students, JoinRate: o.JoinRate, Window: win, Started: r.env.clock.start,
		Media:  r.mediaInfo(),
		Series: samples,
	}
	res.Published = r.published(w0, w1, win)
	connected := r.tallyStudents(res, w0)
	r.studentFigures(res, connected, w0, w1, win)
	res.Latency, res.LatencyAll = w1.lat.minus(w0.lat).spread(), w1.lat.spread()
	r.usage(res, before, w0, w1, win, len(connected))
	res.Held = res.Connected == res.Students && res.Loss.Video <= SweepMaxLoss && res.Latency.P99 <= SweepMaxP99Milli
	return res
}

func (r *runner) mediaInfo() Media {
	m := Media{
		Video: fmt.Sprintf("VP8 %dx%d, %d frames", r.clip.width, r.clip.height, len(r.clip.video)),
		FPS:   r.clip.fps,
	}
	if len(r.clip.audio) > 0 {
		m.Audio = fmt.Sprintf("Opus, %d packets", len(r.clip.audio))
	}
	return m
}

func (r *runner) published(w0, w1 snap, win float64) Published {
	p := r.pub
	video := w1.pubVideo - w0.pubVideo
	return Published{
		VideoKbps:        kbps(video, win),
		AudioKbps:        kbps(w1.pubBytes-w0.pubBytes-video, win),
		VideoPackets:     p.videoPackets.Load(),
		AudioPackets:     p.audioPackets.Load(),
		Frames:           p.frames.Load(),
		KeyframeRequests: p.keyRequests.Load(),
		SendErrors:       p.sendErrors.Load(),
	}
}

// tallyStudents counts connected and failed students and collects join
// times; connected students are those that had media when the measured
// period began and did not fail.
func (r *runner) tallyStudents(res *Result, w0 snap) []int {
	var connected []int
	var firstPkt, firstKey []time.Duration
	errs := map[string]int{}
	for i, s := range r.students {
		first, key, at := s.firstPacket.Load(), s.firstKey.Load(), s.joinAt.Load()
		if first != 0 {
			firstPkt = append(firstPkt, time.Duration(first-at))
		}
		if key != 0 {
			firstKey = append(firstKey, time.Duration(key-at))
		}
		switch err := s.Err(); {
		case err != nil:
			errs[err.Error()]++
		case first == 0 || first > w0.at:
			errs["no media before the measured period began"]++
		default:
			connected = append(connected, i)
			continue
		}
		res.Failed++
	}
	res.Connected = len(connected)
	res.Errors = topErrors(errs, 5)
	res.JoinFirstPacket, res.JoinFirstKeyframe = spreadOf(firstPkt), spreadOf(firstKey)
	return connected
}

// studentFigures fills bitrate and loss from the connected students.
func (r *runner) studentFigures(res *Result, connected []int, w0, w1 snap, win float64) {
	published := kbps(w1.pubBytes-w0.pubBytes, win)
	var rates []float64
	var vexp, vlost, allExp, allLost, aexp, alost uint64
	for _, i := range connected {
		s := r.students[i]
		rates = append(rates, kbps(w1.bytes[i]-w0.bytes[i], win))
		// Over the measured period: the packets published after the last
		// one the student had at its start, up to the last at its end.
		e := w1.maxIdx[i] - w0.maxIdx[i]
		got := min(w1.matched[i]-w0.matched[i], e)
		vexp, vlost = vexp+e, vlost+e-got
		res.Loss.VideoMaxStudent = max(res.Loss.VideoMaxStudent, lossFraction(e, got))
		e, l := s.videoLoss()
		allExp, allLost = allExp+e, allLost+l
		e, l = s.audioLoss()
		aexp, alost = aexp+e, alost+l
		res.Loss.Unmatched += s.unmatched.Load()
		res.Loss.Duplicates += s.dups.Load()
	}
	res.Loss.Video, res.Loss.VideoExpected, res.Loss.VideoLost = lossFraction(vexp, vexp-vlost), vexp, vlost
	res.Loss.VideoAll = lossFraction(allExp, allExp-allLost)
	res.Loss.Audio = lossFraction(aexp, aexp-alost)
	if len(rates) == 0 {
		return
	}
	res.Bitrate.MedianKbps, res.Bitrate.MinKbps = median(rates), slices.Min(rates)
	if published > 0 {
		res.Bitrate.MedianRatio = res.Bitrate.MedianKbps / published
		res.Bitrate.MinRatio = res.Bitrate.MinKbps / published
	}
}

// usage fills the server's and the tool's use of the machine.
func (r *runner) usage(res *Result, before, w0, w1 snap, win float64, connected int) {
	res.Tool = ToolUsage{CPUPercent: cpuPercent(w1.tool-w0.tool, win), Cores: runtime.NumCPU()}
	for _, s := range res.Series {
		res.Tool.CPUPercentMax = max(res.Tool.CPUPercentMax, s.ToolCPU)
	}
	res.Tool.Saturated = res.Tool.CPUPercent > saturatedShare*100*float64(res.Tool.Cores)
	var serverCPU time.Duration
	if w0.serverOK && w1.serverOK {
		serverCPU = w1.server.cpu - w0.server.cpu
	}
	if w0.machine.ok && w1.machine.ok {
		res.Machine.CPUPercent = cpuPercent(w1.machine.busy-w0.machine.busy, win)
		res.Machine.OtherPercent = max(0, res.Machine.CPUPercent-res.Tool.CPUPercent-cpuPercent(serverCPU, win))
	}
	if !before.serverOK || !w0.serverOK || !w1.serverOK {
		return
	}
	cpu := serverCPU
	su := &ServerUsage{
		PID: r.target.pid, CPUPercent: cpuPercent(cpu, win), DeliveredPackets: w1.delivered - w0.delivered,
		RSSBeforeMB: float64(before.server.rss) / mb, RSSAfterMB: float64(w1.server.rss) / mb,
	}
	if connected > 0 && win > 0 {
		su.CPUPerStudentSecondMs = float64(cpu.Milliseconds()) / (float64(connected) * win)
		su.RSSPerStudentKB = float64(w1.server.rss-before.server.rss) / 1024 / float64(connected)
	}
	if su.DeliveredPackets > 0 {
		su.CPUPerPacketUs = float64(cpu.Microseconds()) / float64(su.DeliveredPackets)
	}
	res.Server = su
}

// topErrors lists the n most frequent errors with their counts.
func topErrors(errs map[string]int, n int) []string {
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if errs[keys[i]] != errs[keys[j]] {
			return errs[keys[i]] > errs[keys[j]]
		}
		return keys[i] < keys[j]
	})
	out := make([]string, 0, min(n, len(keys)))
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, fmt.Sprintf("%d× %s", errs[k], k))
	}
	return out
}

func firstError(errs []string) error {
	if len(errs) == 0 {
		return errors.New("no error reported")
	}
	return errors.New(errs[0])
}
