package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
	"lectern/config"
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

// lossyLink drops, on the way in, every third RTP packet of every stream
// by its sequence number, retransmissions included (they keep the number):
// a student whose link loses a third of its packets for good.
type lossyLink struct{}

func (lossyLink) NewInterceptor(string) (interceptor.Interceptor, error) { return &lossyConn{}, nil }

type lossyConn struct{ interceptor.NoOp }

func (*lossyConn) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := r.Read(b, a)
			if err != nil || n < 4 || binary.BigEndian.Uint16(b[2:4])%3 != 0 {
				return n, attr, err
			}
		}
	})
}

// TestBadQualityStudent: of two students, one loses a third of its
// packets. The node judges that one bad and the other good, counts the
// class as in bad quality (half its students are), the loss shows in the
// histogram, the console raises the alert and the teacher, not the other
// student, receives both verdicts.
func TestBadQualityStudent(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "tokens")
	room, teacher, good := liveClass(t, srv, "Ada")
	api, err := client.NewAPI(client.APIOptions{Logger: clientLogger(t), Interceptors: []interceptor.Factory{lossyLink{}}})
	require.NoError(t, err)
	bob := srv.dial(t, srv.token(t, room, auth.RoleStudent, "Bob on a bad link"), client.Options{API: api})

	var m scrape
	waitFor(t, 30*time.Second, "one good and one bad student, and the class in bad quality", func() (bool, string) {
		m = scrapeMetrics(t, srv.base)
		good, bad := m.samples[`lectern_students_quality{verdict="good"}`], m.samples[`lectern_students_quality{verdict="bad"}`]
		classes := m.samples["lectern_classes_bad_quality"]
		return good == 1 && bad == 1 && classes == 1, fmt.Sprintf("good %v, bad %v, classes in bad quality %v", good, bad, classes)
	})
	n := m.samples[`lectern_reception_loss_ratio_count{kind="video"}`]
	under := m.samples[`lectern_reception_loss_ratio_bucket{kind="video",le="0.2"}`]
	require.Less(t, under, n, "reports of 20%% loss or more: %v of %v under", under, n)

	// The operator console raises the same alert, for this class.
	var view struct {
		Alerts []struct{ Kind, Room string } `json:"alerts"`
	}
	apiCall(t, http.MethodGet, srv.base+"/api/operator", operatorToken(t, srv.signer), http.StatusOK, &view)
	require.Contains(t, view.Alerts, struct{ Kind, Room string }{"class_bad_quality", room})

	// The teacher is told each student's verdict; students are not.
	want := map[string]string{good[0].ID(): "good", bob.ID(): "bad"}
	waitFor(t, 10*time.Second, "the teacher's verdicts", func() (bool, string) {
		got := teacher.Verdicts()
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("%v", got)
	})
	require.Empty(t, good[0].Verdicts())
}

// TestClassLabelsCapped: with metrics_class_labels 1, the node exports
// per-class series for its largest class only.
func TestClassLabelsCapped(t *testing.T) {
	t.Parallel()
	srv := startServerWith(t, "tokens", func(c *config.Config) { c.MetricsClassLabels = 1 })
	big, small := newRoom(), newRoom()
	for i, room := range []string{big, big, small} {
		srv.dial(t, srv.token(t, room, auth.RoleStudent, fmt.Sprintf("Student %d", i)), client.Options{NoSubscribe: true})
	}
	var m scrape
	waitFor(t, 10*time.Second, "the largest class's series", func() (bool, string) {
		m = scrapeMetrics(t, srv.base)
		return m.samples[`lectern_class_students{room="`+big+`"}`] == 2, "not yet"
	})
	require.Contains(t, m.samples, `lectern_class_bad_students{room="`+big+`"}`)
	for series := range m.samples {
		require.NotContains(t, series, small, "a series of the smaller class, past the cap")
	}
}
