package app

import (
	"path/filepath"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"lectern/recording"
)

// nodeCollector exports what the node knows of its surroundings, read
// at scrape time: its NATS connection, its capacity and cores, and the
// space left for recordings. The alerting rules in deploy/prometheus use
// them.
type nodeCollector struct {
	a                                   *App
	natsUp, capacity, cores, free, size *prometheus.Desc
}

func newNodeCollector(a *App) *nodeCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("lectern_"+name, help, nil, nil)
	}
	return &nodeCollector{
		a:        a,
		natsUp:   d("nats_connected", "1 while the node's NATS connection is up, 0 while it is down."),
		capacity: d("max_students", "Students this node takes before sending new ones elsewhere (max_students; 0: no limit)."),
		cores:    d("cpu_cores", "Cores the Go runtime schedules on (GOMAXPROCS): process_cpu_seconds_total's ceiling per second."),
		free:     d("recordings_disk_free_bytes", "Bytes free for an unprivileged user on the file system of the recordings."),
		size:     d("recordings_disk_size_bytes", "Size in bytes of the file system of the recordings."),
	}
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.natsUp, c.capacity, c.cores, c.free, c.size} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	up := 0.0
	if c.a.nats != nil && c.a.nats.ready() == nil {
		up = 1
	}
	gauge(c.natsUp, up)
	gauge(c.capacity, float64(c.a.cfg.MaxStudents))
	gauge(c.cores, float64(runtime.GOMAXPROCS(0)))
	if free, size, ok := recording.DiskSpace(c.a.recordingsDir()); ok {
		gauge(c.free, float64(free))
		gauge(c.size, float64(size))
	}
}

// recordingsDir is where the node writes recordings.
func (a *App) recordingsDir() string { return filepath.Join(a.cfg.Data, "recordings") }
