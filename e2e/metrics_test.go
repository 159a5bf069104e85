package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

// scrape is one read of a node's /metrics: every sample by its series,
// `name{label="value",...}` as the text format prints it, and every
// metric family's name from its # TYPE line.
type scrape struct {
	samples  map[string]float64
	families map[string]string // name -> type
}

// liveClass opens a class on srv with a pion teacher publishing the clip
// and pion students of those names watching it.
func liveClass(t *testing.T, srv *server, students ...string) (room string, teacher *client.Client, watching []*client.Client) {
	t.Helper()
	room = newRoom()
	teacher = srv.dial(t, srv.token(t, room, auth.RoleTeacher, "Ms Rivera"), client.Options{})
	publishClip(t, teacher, clipIVF, clipOgg)
	for _, name := range students {
		watching = append(watching, srv.dial(t, srv.token(t, room, auth.RoleStudent, name), client.Options{}))
	}
	return room, teacher, watching
}

func scrapeMetrics(t *testing.T, base string) scrape {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s := scrape{samples: map[string]float64{}, families: map[string]string{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			s.families[name] = typ
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, "bad metrics line %q", line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, "bad metrics line %q", line)
		s.samples[line[:i]] = v
	}
	require.NoError(t, sc.Err())
	return s
}

// TestFleetMetrics runs a class of a pion teacher and two pion students
// and reads the node's /metrics as Prometheus would: join times, the
// wait for media, the students' loss, jitter and round trip from their
// receiver reports, their quality verdicts, and the node's NATS,
// capacity, cores and disk gauges. No series names a student or a class.
func TestFleetMetrics(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "tokens")
	room, teacher, students := liveClass(t, srv, "Ada", "Bob")

	var m scrape
	waitFor(t, 30*time.Second, "both students' receiver reports in the metrics", func() (bool, string) {
		m = scrapeMetrics(t, srv.base)
		good := m.samples[`lectern_students_quality{verdict="good"}`]
		rtt := m.samples[`lectern_reception_rtt_seconds_count{kind="video"}`]
		audio := m.samples[`lectern_reception_loss_ratio_count{kind="audio"}`]
		return good == 2 && rtt >= 2 && audio >= 2 && m.samples["lectern_media_start_seconds_count"] >= 4,
			fmt.Sprintf("good students %v, video RTT reports %v, audio loss reports %v, media starts %v",
				good, rtt, audio, m.samples["lectern_media_start_seconds_count"])
	})
	require.GreaterOrEqual(t, m.samples["lectern_join_seconds_count"], 3.0, "three joins")
	require.Positive(t, m.samples["lectern_join_seconds_sum"])
	require.Less(t, m.samples["lectern_join_seconds_sum"], 3*5.0, "joins on loopback take well under 5 s each")
	// On loopback with no loss: every report under 1% loss, RTT under 100 ms.
	for _, kind := range []string{"audio", "video"} {
		n := m.samples[`lectern_reception_loss_ratio_count{kind="`+kind+`"}`]
		require.Equal(t, n, m.samples[`lectern_reception_loss_ratio_bucket{kind="`+kind+`",le="0.01"}`], kind)
		n = m.samples[`lectern_reception_rtt_seconds_count{kind="`+kind+`"}`]
		require.Equal(t, n, m.samples[`lectern_reception_rtt_seconds_bucket{kind="`+kind+`",le="0.1"}`], kind)
	}
	require.Zero(t, m.samples[`lectern_students_quality{verdict="bad"}`])
	require.Zero(t, m.samples["lectern_classes_bad_quality"])
	require.Equal(t, 1.0, m.samples["lectern_nats_connected"])
	require.Equal(t, float64(runtime.GOMAXPROCS(0)), m.samples["lectern_cpu_cores"])
	require.Zero(t, m.samples["lectern_max_students"])
	require.Positive(t, m.samples["lectern_recordings_disk_free_bytes"])
	require.GreaterOrEqual(t, m.samples["lectern_recordings_disk_size_bytes"], m.samples["lectern_recordings_disk_free_bytes"])
	require.Contains(t, m.samples, `lectern_recording_failures_total{reason="disk_full"}`)

	for series := range m.samples {
		for _, c := range append(students, teacher) {
			require.NotContains(t, series, c.ID(), "a series names a participant")
		}
		require.NotContains(t, series, room, "a series names the class")
	}
}
