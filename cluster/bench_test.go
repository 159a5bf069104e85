package cluster

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"lectern/sfu"
)

// -scale runs TestScaleFigures at the size docs/scaling.md reports: 100
// nodes and 100,000 classes. Without it the same test runs small.
var scaleFlag = flag.Bool("scale", false, "TestScaleFigures: 100 nodes, 100,000 classes (docs/scaling.md)")

// scaleRun is one measurement's size.
type scaleRun struct {
	nodes, placers, workers, classes int
	idle                             time.Duration // heartbeat-only window
}

// simCluster is simulated nodes on one embedded server: every node has
// its own connection and Registry; the placers also have a Directory.
type simCluster struct {
	srv   *server.Server
	regs  []*Registry
	dirs  []*Directory
	conns []*nats.Conn
}

func startSim(t testing.TB, run scaleRun) *simCluster {
	opts := &server.Options{ServerName: "scale", DontListen: true, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second))
	sim := &simCluster{srv: s}
	t.Cleanup(sim.stop)
	for i := range run.nodes {
		nc, err := nats.Connect("", nats.InProcessServer(s))
		require.NoError(t, err)
		sim.conns = append(sim.conns, nc)
		students := 100 + i*7%900 // uneven loads, as in a real fleet
		reg, err := NewRegistry(RegistryOptions{Conn: nc, Load: func() Load { return Load{Students: students} },
			Self: NodeInfo{ID: NodeID(fmt.Sprintf("sim-%03d", i)), URL: "http://10.0.0.1:8080", Capacity: 2000}})
		require.NoError(t, err)
		sim.regs = append(sim.regs, reg)
	}
	for i := range run.placers {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		d, err := NewDirectory(ctx, DirectoryOptions{Conn: sim.conns[i], Registry: sim.regs[i], Logger: zerolog.Nop()})
		cancel()
		require.NoError(t, err)
		sim.dirs = append(sim.dirs, d)
	}
	require.Eventually(t, func() bool {
		for _, r := range sim.regs[:run.placers] {
			if len(r.Nodes()) != run.nodes {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "placers see every node")
	return sim
}

func (sim *simCluster) stop() {
	for _, d := range sim.dirs {
		_ = d.Close()
	}
	for _, r := range sim.regs {
		_ = r.Close()
	}
	for _, nc := range sim.conns {
		nc.Close()
	}
	shutdown(sim.srv)
}

// msgs is the server's message counters (varz in_msgs + out_msgs).
func (sim *simCluster) msgs(t testing.TB) (in, out int64) {
	v, err := sim.srv.Varz(nil)
	require.NoError(t, err)
	return v.InMsgs, v.OutMsgs
}

// TestScaleFigures measures the control plane at scale: simulated nodes
// announce every second while placers place classes through the real
// key-value store. It reports placement throughput and latency, and NATS
// messages per node and per class from the server's counters. The
// figures in docs/scaling.md come from `go test -run TestScaleFigures
// -scale -v ./cluster/`.
func TestScaleFigures(t *testing.T) {
	run := scaleRun{nodes: 10, placers: 2, workers: 8, classes: 2000, idle: 3 * time.Second}
	if *scaleFlag {
		run = scaleRun{nodes: 100, placers: 4, workers: 64, classes: 100_000, idle: 10 * time.Second}
	}
	sim := startSim(t, run)

	// Heartbeats alone: every node publishes one announcement a second,
	// and the server delivers it to every node.
	in0, out0 := sim.msgs(t)
	time.Sleep(run.idle)
	in1, out1 := sim.msgs(t)
	secs := run.idle.Seconds()
	hbIn, hbOut := float64(in1-in0)/secs, float64(out1-out0)/secs
	t.Logf("heartbeats, %d nodes: %.0f msgs/s in, %.0f msgs/s out (%.2f in and %.1f out per node)",
		run.nodes, hbIn, hbOut, hbIn/float64(run.nodes), hbOut/float64(run.nodes))

	lat, elapsed := placeAll(t, sim, run)
	in2, out2 := sim.msgs(t)
	placed := float64(run.classes)
	rate := placed / elapsed.Seconds()
	// Subtract the heartbeats that went on meanwhile.
	plIn := float64(in2-in1) - hbIn*elapsed.Seconds()
	plOut := float64(out2-out1) - hbOut*elapsed.Seconds()
	t.Logf("placement: %d classes by %d placers x %d workers in %v: %.0f placements/s; latency p50 %v p99 %v max %v",
		run.classes, run.placers, run.workers/run.placers, elapsed.Round(time.Millisecond), rate,
		lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
	t.Logf("placement traffic: %.1f msgs in + %.1f msgs out per class (%d directory watchers)",
		plIn/placed, plOut/placed, run.placers)
	t.Logf("machine: %d CPUs, GOMAXPROCS %d", runtime.NumCPU(), runtime.GOMAXPROCS(0))

	checkPlacement(t, sim, run)
}

// placeAll places run.classes classes and returns the sorted latencies.
func placeAll(t *testing.T, sim *simCluster, run scaleRun) ([]time.Duration, time.Duration) {
	lat := make([]time.Duration, run.classes)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range run.workers {
		dir := sim.dirs[w%run.placers]
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= run.classes {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				t0 := time.Now()
				_, err := dir.Place(ctx, sfu.RoomID(fmt.Sprintf("class-%06d", i)))
				lat[i] = time.Since(t0)
				cancel()
				if err != nil {
					t.Errorf("place class-%06d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	return lat, elapsed
}

// checkPlacement: every class has exactly one entry, on a real node, and
// the classes spread over the nodes.
func checkPlacement(t *testing.T, sim *simCluster, run scaleRun) {
	require.Eventually(t, func() bool { return len(sim.dirs[0].Entries()) == run.classes },
		60*time.Second, 100*time.Millisecond, "the mirror holds every class")
	perNode := map[NodeID]int{}
	for _, e := range sim.dirs[0].Entries() {
		perNode[e.Origin]++
	}
	counts := make([]int, 0, len(perNode))
	for _, c := range perNode {
		counts = append(counts, c)
	}
	slices.Sort(counts)
	t.Logf("spread: %d nodes got classes; fewest %d, median %d, most %d per node",
		len(counts), counts[0], counts[len(counts)/2], counts[len(counts)-1])
	require.Len(t, perNode, run.nodes, "every node gets classes")
}

// BenchmarkPlacement is one Place of a new class on 10 simulated nodes.
func BenchmarkPlacement(b *testing.B) {
	sim := startSim(b, scaleRun{nodes: 10, placers: 1})
	dir := sim.dirs[0]
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := dir.Place(ctx, sfu.RoomID(fmt.Sprintf("bench-%d", i))); err != nil {
			b.Fatal(err)
		}
	}
}
