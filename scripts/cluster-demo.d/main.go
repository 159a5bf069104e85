// Command cluster-demo.d is the media side of scripts/cluster-demo: a WHIP
// publisher and WHEP viewers spread over the nodes of a Lectern cluster,
// that follow 307 redirects (RFC 9110 section 15.4.8) to the node a class
// lives on, move to another node when theirs dies, and report how long
// each move took. The script starts the nodes; this program kills them
// (SIGKILL, by pid) so that it times each recovery from the kill itself.
//
// Every peer connection uses client.NewAPI: loopback candidates only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"lectern/client"
)

// Timings of the demo. Each phase is bounded so the script ends in time.
const (
	playFor        = 4 * time.Second
	recoverTimeout = 25 * time.Second
)

type config struct {
	nodes    []string // base URLs of nodes a, b and c
	pids     []int    // their process ids
	room     string
	teacher  string
	students []string // one token per viewer
	ivf, ogg string
}

func main() {
	var cfg config
	var nodes, pids, students string
	flag.StringVar(&nodes, "nodes", "", "comma-separated base URLs of nodes a, b, c")
	flag.StringVar(&pids, "pids", "", "comma-separated process ids of nodes a, b, c")
	flag.StringVar(&cfg.room, "room", "demo", "class id")
	flag.StringVar(&cfg.teacher, "teacher", "", "teacher token")
	flag.StringVar(&students, "students", "", "comma-separated student tokens, one per viewer (two)")
	flag.StringVar(&cfg.ivf, "ivf", "testdata/clip.ivf", "VP8 clip")
	flag.StringVar(&cfg.ogg, "ogg", "testdata/clip.ogg", "Opus clip")
	freePorts := flag.Int("free-ports", 0, "print this many loopback ports free for both TCP and UDP, and exit")
	flag.Parse()
	if *freePorts > 0 {
		ports, err := pickPorts(*freePorts)
		if err != nil {
			fail(err)
		}
		fmt.Println(strings.Trim(fmt.Sprint(ports), "[]"))
		return
	}
	cfg.nodes = splitList(nodes)
	cfg.students = splitList(students)
	for _, p := range splitList(pids) {
		var n int
		if _, err := fmt.Sscan(p, &n); err != nil {
			fail(fmt.Errorf("bad pid %q", p))
		}
		cfg.pids = append(cfg.pids, n)
	}
	if len(cfg.nodes) != 3 || len(cfg.pids) != 3 || len(cfg.students) != 2 || cfg.teacher == "" {
		fail(errors.New("usage: --nodes A,B,C --pids PA,PB,PC --teacher T --students S1,S2"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cluster-demo: FAILED:", err)
	os.Exit(1)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func say(format string, a ...any) {
	fmt.Printf("  [%s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

// run is the scenario: publish on a, watch from b and c, kill b (its
// viewer moves to c), then kill a, the origin (the publisher moves to c
// and both viewers receive again).
func run(ctx context.Context, cfg config) error {
	api, err := client.NewAPI(client.APIOptions{Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	media, err := client.NewPublisher(client.PublisherOptions{IVF: cfg.ivf, Ogg: cfg.ogg, StreamID: "demo"})
	if err != nil {
		return err
	}
	defer media.Stop()
	a, b, c := cfg.nodes[0], cfg.nodes[1], cfg.nodes[2]
	pub := &whipPublisher{api: api, media: media, room: cfg.room, token: cfg.teacher}
	defer pub.close()
	if err := pub.connect(ctx, []string{a, b, c}); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	say("publisher: WHIP to node a, session on %s", pub.node)
	media.Start()

	viewers := []*whepViewer{
		{name: "viewer 1", api: api, room: cfg.room, token: cfg.students[0]},
		{name: "viewer 2", api: api, room: cfg.room, token: cfg.students[1]},
	}
	defer func() {
		for _, v := range viewers {
			v.close()
		}
	}()
	for i, v := range viewers {
		order := []string{b, c, a}
		if i == 1 {
			order = []string{c, b, a}
		}
		if err := v.connect(ctx, order); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		say("%s: WHEP to %s, session on %s", v.name, order[0], v.node)
	}
	if err := phasePlay(ctx, viewers); err != nil {
		return err
	}
	if err := phaseKillViewerNode(ctx, cfg, viewers); err != nil {
		return err
	}
	return phaseKillOrigin(ctx, cfg, pub, viewers)
}

// phasePlay plays for playFor and prints what each viewer received.
func phasePlay(ctx context.Context, viewers []*whepViewer) error {
	for _, v := range viewers {
		if _, err := v.waitPacket(ctx, time.Now(), recoverTimeout); err != nil {
			return fmt.Errorf("%s on %s: no media: %w", v.name, v.node, err)
		}
	}
	before := make([]counts, len(viewers))
	for i, v := range viewers {
		before[i] = v.counts()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(playFor):
	}
	for i, v := range viewers {
		d := v.counts().minus(before[i])
		say("%s on %s: %d video + %d audio packets in %v, %.0f kbit/s", v.name, v.node,
			d.video, d.audio, playFor, float64(d.bytes)*8/playFor.Seconds()/1000)
		if d.video == 0 || d.audio == 0 {
			return fmt.Errorf("%s on %s received no video or no audio", v.name, v.node)
		}
	}
	return nil
}

// phaseKillViewerNode kills node b; viewer 1 notices the silence, finds
// its node dead and posts again to the next node.
func phaseKillViewerNode(ctx context.Context, cfg config, viewers []*whepViewer) error {
	fmt.Println("== kill -9 node b (a viewer's node)")
	killed := kill(cfg.pids[1])
	say("node b killed (pid %d)", cfg.pids[1])
	for _, v := range viewers {
		took, err := v.recover(ctx, killed, cfg.nodes)
		if err != nil {
			return fmt.Errorf("%s after node b died: %w", v.name, err)
		}
		say("%s: playing from %s, %.2f s after the kill", v.name, v.node, took.Seconds())
	}
	return nil
}

// phaseKillOrigin kills node a, where the teacher publishes: the
// publisher republishes elsewhere and the viewers receive again.
func phaseKillOrigin(ctx context.Context, cfg config, pub *whipPublisher, viewers []*whepViewer) error {
	fmt.Println("== kill -9 node a (the class's origin, where the teacher publishes)")
	killed := kill(cfg.pids[0])
	say("node a killed (pid %d)", cfg.pids[0])
	took, err := pub.recover(ctx, killed, cfg.nodes)
	if err != nil {
		return fmt.Errorf("publisher after node a died: %w", err)
	}
	say("publisher: publishing on %s again, %.2f s after the kill", pub.node, took.Seconds())
	for _, v := range viewers {
		took, err := v.recover(ctx, killed, cfg.nodes)
		if err != nil {
			return fmt.Errorf("%s after node a died: %w", v.name, err)
		}
		say("%s: playing from %s, %.2f s after the kill", v.name, v.node, took.Seconds())
	}
	return nil
}

// pickPorts finds n distinct loopback ports free for TCP and UDP alike,
// holding each until all are found. (Another process may take one before
// the nodes bind it; the script then fails clearly and can be run again.)
func pickPorts(n int) ([]int, error) {
	var ports []int
	var held []io.Closer
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	for tries := 0; len(ports) < n && tries < 100*n; tries++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		held = append(held, u)
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, errors.New("no free loopback ports")
	}
	return ports, nil
}

func kill(pid int) time.Time {
	at := time.Now()
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return at
}
