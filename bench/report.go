package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printResult writes a run's figures as a readable table.
func printResult(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\nLectern bench: %d students over %s, joining %g/s, publisher over %s, %s\n",
		r.Students, r.Transport, r.JoinRate, r.Publisher, r.Target)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, format string, a ...any) {
		fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{name}, a...)...)
	}
	row("media", "%s at %.0f fps; %s", r.Media.Video, r.Media.FPS, orNone(r.Media.Audio))
	row("published", "video %.0f kbit/s, audio %.0f kbit/s over the measured %.1f s (%d keyframe requests)",
		r.Published.VideoKbps, r.Published.AudioKbps, r.Window, r.Published.KeyframeRequests)
	row("students", "%d connected, %d failed", r.Connected, r.Failed)
	for _, e := range r.Errors {
		row("", "%s", e)
	}
	row("join: first packet", "%s", spreadText(r.JoinFirstPacket, false))
	row("join: first keyframe", "%s", spreadText(r.JoinFirstKeyframe, false))
	row("received bitrate", "median %.0f kbit/s (%.1f%%), min %.0f kbit/s (%.1f%% of published)",
		r.Bitrate.MedianKbps, r.Bitrate.MedianRatio*100, r.Bitrate.MinKbps, r.Bitrate.MinRatio*100)
	row("loss", "video %.3f%% (worst student %.3f%%, %d of %d)",
		r.Loss.Video*100, r.Loss.VideoMaxStudent*100, r.Loss.VideoLost, r.Loss.VideoExpected)
	row("loss, joins included", "video %.3f%%, audio %.3f%%; %d unmatched, %d duplicates",
		r.Loss.VideoAll*100, r.Loss.Audio*100, r.Loss.Unmatched, r.Loss.Duplicates)
	row("forwarding latency", "%s", spreadText(r.Latency, true))
	row("latency, joins included", "%s", spreadText(r.LatencyAll, true))
	if s := r.Server; s != nil {
		row("server CPU", "%.1f%% of a core; %.3f ms per student-second; %.2f µs per delivered packet (%d packets)",
			s.CPUPercent, s.CPUPerStudentSecondMs, s.CPUPerPacketUs, s.DeliveredPackets)
		row("server memory", "RSS %.1f MB before the students, %.1f MB with them: %.0f KB per student",
			s.RSSBeforeMB, s.RSSAfterMB, s.RSSPerStudentKB)
	} else {
		row("server", "not measured (remote server; give --server-pid for one on this machine)")
	}
	sat := ""
	if r.Tool.Saturated {
		sat = "; SATURATED: the tool, not the server, may be the limit"
	}
	row("tool CPU", "%.1f%% of a core (peak %.1f%%) of %d cores%s", r.Tool.CPUPercent, r.Tool.CPUPercentMax, r.Tool.Cores, sat)
	busy := ""
	if r.Machine.OtherPercent > 20 {
		busy = "; other processes were busy: figures are disturbed"
	}
	row("machine CPU", "%.1f%% of a core, of which %.1f%% other processes%s", r.Machine.CPUPercent, r.Machine.OtherPercent, busy)
	verdict := "no"
	if r.Held {
		verdict = "yes"
	}
	row("held", "%s (every student connected; over the measured period, loss <= 1%% and p99 latency <= 200 ms)", verdict)
	_ = tw.Flush()
}

func spreadText(s Spread, p99 bool) string {
	if s.Count == 0 {
		return "none"
	}
	if p99 {
		return fmt.Sprintf("p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms (%d packets)", s.P50, s.P95, s.P99, s.Max, s.Count)
	}
	return fmt.Sprintf("p50 %.0f ms, p95 %.0f ms, max %.0f ms (%d students)", s.P50, s.P95, s.Max, s.Count)
}

func orNone(s string) string {
	if s == "" {
		return "no audio"
	}
	return s
}

// printSweep writes one line per step and the largest number held.
func printSweep(w io.Writer, sr *SweepResult) {
	fmt.Fprintf(w, "\nSweep (%s)\n", sr.Criteria)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "students\tconnected\tloss %\tp99 ms\tmin kbit/s\tkeyframe p95 ms\tserver µs/pkt\ttool CPU %\theld\t")
	for _, r := range sr.Steps {
		perPkt := "-"
		if r.Server != nil {
			perPkt = fmt.Sprintf("%.2f", r.Server.CPUPerPacketUs)
		}
		fmt.Fprintf(tw, "%d\t%d\t%.3f\t%.2f\t%.0f\t%.0f\t%s\t%.0f\t%v\t\n", r.Students, r.Connected, r.Loss.Video*100,
			r.Latency.P99, r.Bitrate.MinKbps, r.JoinFirstKeyframe.P95, perPkt, r.Tool.CPUPercent, r.Held)
	}
	_ = tw.Flush()
	if sr.Largest == 0 {
		fmt.Fprintln(w, "Largest number of students held: none (the first step did not hold)")
		return
	}
	fmt.Fprintf(w, "Largest number of students held: %d\n", sr.Largest)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// title is a short description of a run for headings.
func (r *Result) title() string {
	return strings.TrimSpace(fmt.Sprintf("%d students over %s, %s", r.Students, r.Transport, r.Target))
}
