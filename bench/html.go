package bench

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// The HTML report is one self-contained file: charts are inline SVG, so
// it opens offline and can be attached to a ticket as it is.

type chartSeries struct {
	name  string
	color string
	ys    []float64
}

const (
	chartW, chartH         = 760, 230
	padL, padR, padT, padB = 60, 16, 28, 34
	plotW, plotH           = chartW - padL - padR, chartH - padT - padB
	chartTicks             = 5
	chartLegendSpacing     = 125
	chartLegendY           = 16

	colorA, colorB, colorC, colorD = "#1f77b4", "#d62728", "#2ca02c", "#9467bd"

	chartFont      = `font-family="sans-serif" font-size="11"`
	chartTitleFont = `font-family="sans-serif" font-size="13" font-weight="bold"`
	chartAxis      = `stroke="#999" stroke-width="1"`
	chartGrid      = `stroke="#eee" stroke-width="1"`
	chartLine      = `fill="none" stroke-width="1.8"`
)

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// lineChart draws series over xs (seconds) as an SVG line chart.
func lineChart(title, unit string, xs []float64, series []chartSeries) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`,
		chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" %s>%s (%s)</text>`, padL, chartLegendY, chartTitleFont,
		template.HTMLEscapeString(title), template.HTMLEscapeString(unit))
	xMax, yMax := 1.0, 0.0
	for _, x := range xs {
		xMax = max(xMax, x)
	}
	for _, s := range series {
		for _, y := range s.ys {
			if !math.IsNaN(y) {
				yMax = max(yMax, y)
			}
		}
	}
	yMax = niceCeil(yMax * 1.05)
	px := func(x float64) float64 { return padL + x/xMax*plotW }
	py := func(y float64) float64 { return padT + plotH - y/yMax*plotH }
	drawAxes(&b, xMax, yMax, px, py)
	for i, s := range series {
		drawLine(&b, s, xs, px, py)
		lx := padL + 290 + i*chartLegendSpacing
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/>`, lx, chartLegendY-4, s.color)
		fmt.Fprintf(&b, `<text x="%d" y="%d" %s>%s</text>`, lx+16, chartLegendY, chartFont, template.HTMLEscapeString(s.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built only from numbers and escaped text
}

// drawLine draws a series as polylines, broken where it has no value (NaN).
func drawLine(b *strings.Builder, s chartSeries, xs []float64, px, py func(float64) float64) {
	var pts []string
	flush := func() {
		if len(pts) > 0 {
			fmt.Fprintf(b, `<polyline %s stroke="%s" points="%s"/>`, chartLine, s.color, strings.Join(pts, " "))
		}
		pts = pts[:0]
	}
	for j, y := range s.ys {
		if j >= len(xs) || math.IsNaN(y) {
			flush()
			continue
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(xs[j]), py(y)))
	}
	flush()
}

func drawAxes(b *strings.Builder, xMax, yMax float64, px, py func(float64) float64) {
	for i := 0; i <= chartTicks; i++ {
		y := yMax * float64(i) / chartTicks
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" %s/>`, padL, padL+plotW, py(y), py(y), chartGrid)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" %s>%s</text>`, padL-6, py(y)+4, chartFont, tickLabel(y))
	}
	step := niceCeil(xMax / 8)
	for x := 0.0; x <= xMax+1e-9; x += step {
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" %s>%s s</text>`, px(x), padT+plotH+16,
			chartFont, tickLabel(x))
	}
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" %s/>`, padL, padL+plotW, padT+plotH, padT+plotH, chartAxis)
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" %s/>`, padL, padL, padT, padT+plotH, chartAxis)
}

func tickLabel(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// runCharts draws a run's bitrate, latency, CPU and student charts.
func runCharts(r *Result) []template.HTML {
	n := len(r.Series)
	xs := make([]float64, n)
	pick := func(f func(Sample) float64) []float64 {
		out := make([]float64, n)
		for i, s := range r.Series {
			out[i] = f(s)
		}
		return out
	}
	for i, s := range r.Series {
		xs[i] = s.T
	}
	// Seconds without students or without latency samples have no value.
	students := func(f func(Sample) float64) func(Sample) float64 {
		return func(s Sample) float64 {
			if s.MedianKbps == 0 && s.MinKbps == 0 {
				return math.NaN()
			}
			return f(s)
		}
	}
	latency := func(f func(Sample) float64) func(Sample) float64 {
		return func(s Sample) float64 {
			if s.LatencyCount == 0 {
				return math.NaN()
			}
			return f(s)
		}
	}
	return []template.HTML{
		lineChart("Bitrate", "kbit/s", xs, []chartSeries{
			{"published", colorA, pick(func(s Sample) float64 { return s.PublishedKbps })},
			{"student median", colorC, pick(students(func(s Sample) float64 { return s.MedianKbps }))},
			{"student min", colorB, pick(students(func(s Sample) float64 { return s.MinKbps }))},
		}),
		lineChart("Forwarding latency", "ms", xs, []chartSeries{
			{"p50", colorA, pick(latency(func(s Sample) float64 { return s.LatencyP50 }))},
			{"p99", colorB, pick(latency(func(s Sample) float64 { return s.LatencyP99 }))},
		}),
		lineChart("CPU", "% of one core", xs, []chartSeries{
			{"server", colorA, pick(func(s Sample) float64 { return s.ServerCPU })},
			{"tool", colorD, pick(func(s Sample) float64 { return s.ToolCPU })},
			{"other processes", colorB, pick(func(s Sample) float64 { return s.OtherCPU })},
		}),
		lineChart("Students, server memory", "count, MB", xs, []chartSeries{
			{"students connected", colorC, pick(func(s Sample) float64 { return float64(s.Connected) })},
			{"server RSS (MB)", colorA, pick(func(s Sample) float64 { return s.ServerRSSMB })},
		}),
	}
}

// sweepChart draws loss and p99 latency against the number of students.
func sweepChart(sr *SweepResult) template.HTML {
	xs := make([]float64, len(sr.Steps))
	loss := make([]float64, len(sr.Steps))
	p99 := make([]float64, len(sr.Steps))
	for i, r := range sr.Steps {
		xs[i], loss[i], p99[i] = float64(r.Students), r.Loss.Video*100, r.Latency.P99
	}
	chart := lineChart("Sweep: p99 latency (ms) and video loss (%) by students", "x: students", xs, []chartSeries{
		{"p99 latency ms", colorB, p99}, {"loss %", colorA, loss},
	})
	// The x axis of a sweep counts students, not seconds.
	return template.HTML(strings.ReplaceAll(string(chart), " s</text>", "</text>"))
}

type htmlRun struct {
	Title  string
	Table  string
	Charts []template.HTML
}

type htmlPage struct {
	Sweep      *SweepResult
	SweepTable string
	SweepChart template.HTML
	Runs       []htmlRun
}

var pageTemplate = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lectern bench report</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 60em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }
svg { display: block; margin: 1em 0; }
</style></head><body>
<h1>Lectern bench report</h1>
{{if .Sweep}}<h2>Sweep: largest number of students held: {{.Sweep.Largest}}</h2>
<pre>{{.SweepTable}}</pre>
{{.SweepChart}}
{{end}}{{range .Runs}}<section>
<h2>{{.Title}}</h2>
<pre>{{.Table}}</pre>
{{range .Charts}}{{.}}
{{end}}</section>
{{end}}</body></html>
`))

// writeHTML writes the report of a run, or of a sweep's steps.
func writeHTML(w io.Writer, res *Result, sr *SweepResult) error {
	page := htmlPage{Sweep: sr}
	runs := []*Result{res}
	if sr != nil {
		var b bytes.Buffer
		printSweep(&b, sr)
		page.SweepTable, page.SweepChart, runs = b.String(), sweepChart(sr), sr.Steps
	}
	for _, r := range runs {
		if r == nil {
			continue
		}
		var b bytes.Buffer
		printResult(&b, r)
		page.Runs = append(page.Runs, htmlRun{Title: r.title(), Table: b.String(), Charts: runCharts(r)})
	}
	return pageTemplate.Execute(w, page)
}
