package bench

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every peer
// connection, reader, pump and sampler a run starts must be gone when it
// returns. The lectern binary built for the tests is removed afterwards.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(cleanupAfter{m})
}

type cleanupAfter struct{ m *testing.M }

func (c cleanupAfter) Run() int {
	code := c.m.Run()
	if lecternBuilt.Load() {
		if bin, err := lecternBinary(); err == nil {
			_ = os.RemoveAll(filepath.Dir(bin))
		}
	}
	return code
}

// lecternBuilt reports whether lecternBinary has run, so TestMain does not
// build the binary just to remove it.
var lecternBuilt atomic.Bool

// lecternBinary builds cmd/lectern once per test process: under `go test`
// os.Executable is the test binary, which cannot serve.
var lecternBinary = sync.OnceValues(func() (string, error) {
	lecternBuilt.Store(true)
	dir, err := os.MkdirTemp("", "lectern-bench-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "lectern")
	out, err := exec.Command("go", "build", "-o", bin, "lectern/cmd/lectern").CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", &buildError{out: string(out), err: err}
	}
	return bin, nil
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string {
	return "go build lectern/cmd/lectern: " + e.err.Error() + "\n" + e.out
}

// TestRunLocalServer runs a tiny bench against a lectern child process and
// checks the figures are real: every student connected and received the
// published bitrate with no loss, latency was measured, and the reports
// were written.
func TestRunLocalServer(t *testing.T) {
	bin, err := lecternBinary()
	require.NoError(t, err)
	for _, transport := range []string{TransportWHEP, TransportWS} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			o := DefaultOptions()
			o.ServerBinary, o.Students, o.JoinRate, o.Duration = bin, 3, 10, 5*time.Second
			o.Transport, o.Room = transport, "bench-"+transport
			o.JSON, o.HTML = filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.html")
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			res, err := Run(ctx, o)
			require.NoError(t, err)
			require.NoError(t, writeReports(&o, res, nil))
			checkResult(t, res)
			checkReports(t, o, res)
		})
	}
}

func checkResult(t *testing.T, res *Result) {
	t.Helper()
	require.Equal(t, 3, res.Connected, "errors: %v", res.Errors)
	require.Zero(t, res.Failed)
	require.Greater(t, res.Published.VideoKbps, 1000.0, "the clip is about 1.5 Mbit/s")
	require.Positive(t, res.Published.AudioKbps)
	require.Greater(t, res.Bitrate.MinRatio, 0.9, "every student receives what is published")
	require.Less(t, res.Bitrate.MedianRatio, 1.1)
	require.Less(t, res.Loss.Video, 0.01)
	require.Positive(t, res.Loss.VideoExpected)
	require.Less(t, res.Loss.Audio, 0.01)
	require.Positive(t, res.Latency.Count)
	require.Positive(t, res.Latency.P99)
	require.Less(t, res.Latency.P99, 1000.0)
	require.GreaterOrEqual(t, res.LatencyAll.Count, res.Latency.Count)
	require.Less(t, res.Loss.VideoAll, 0.01)
	require.Equal(t, 3, res.JoinFirstKeyframe.Count)
	require.Positive(t, res.JoinFirstKeyframe.Max)
	require.GreaterOrEqual(t, res.JoinFirstKeyframe.P50, res.JoinFirstPacket.P50)
	require.NotNil(t, res.Server, "a local server is measured")
	require.Positive(t, res.Server.CPUPerPacketUs)
	require.Positive(t, res.Server.RSSAfterMB)
	require.Positive(t, res.Server.DeliveredPackets)
	require.Positive(t, res.Tool.CPUPercent)
	require.NotEmpty(t, res.Series)
	require.True(t, res.Held)
}

func checkReports(t *testing.T, o Options, res *Result) {
	t.Helper()
	raw, err := os.ReadFile(o.JSON)
	require.NoError(t, err)
	var back Result
	require.NoError(t, json.Unmarshal(raw, &back))
	require.Equal(t, res.Connected, back.Connected)
	require.Equal(t, res.Latency, back.Latency)
	page, err := os.ReadFile(o.HTML)
	require.NoError(t, err)
	svgs, lines := parseHTML(t, page)
	require.Equal(t, 4, svgs)
	require.GreaterOrEqual(t, lines, 8, "every series of every chart is drawn")
}
