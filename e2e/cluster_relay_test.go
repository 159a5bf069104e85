package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

// keyframeWindow is the sfu's merging interval for keyframe requests: at
// most one request per track goes to the publisher in each window.
const keyframeWindow = 500 * time.Millisecond

// TestClusterRelay: how relays between nodes behave, on three nodes. The
// teacher publishes on A; students sit on B (an edge) and C. The last
// step relays between A and B both ways at once.
func TestClusterRelay(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 0, 0, 0)
	a, b, c := nodes[0], nodes[1], nodes[2]

	t.Run("the edge merges its students' keyframe requests", func(t *testing.T) { testEdgeMergesPLI(t, a, b) })
	t.Run("a relay ends with its last local student and comes back", func(t *testing.T) { testRelayTeardown(t, a, b, c) })
	t.Run("moderation crosses nodes", func(t *testing.T) { testRemoteRemove(t, a, b, c) })
	t.Run("a class ends from any node", func(t *testing.T) { testEndClassAnyNode(t, a, b, c) })
	t.Run("a student invited on an edge publishes to every node", func(t *testing.T) { testEdgeStudentPublishes(t, a, b, c) })
	t.Run("a WHEP viewer on an edge gets video", func(t *testing.T) { testWHEPOnEdge(t, a, b) })
	t.Run("H.264 with no profile stated crosses to an edge", func(t *testing.T) { testProfilelessH264OnEdge(t, a, b) })
	t.Run("relays both ways between two nodes, two of one class", func(t *testing.T) { testRelaysBothWays(t, a, b, c) })
}

// goLive joins the teacher on n and publishes the clip as the camera.
func goLive(t *testing.T, n *node, room string) (*client.Client, *client.Publication) {
	t.Helper()
	teacher := n.dial(t, n.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
	_, pub := publishClip(t, teacher, clipIVF, clipOgg)
	require.Eventually(t, teacher.Live, 10*time.Second, 20*time.Millisecond, "teacher live")
	return teacher, pub
}

func testEdgeMergesPLI(t *testing.T, a, b *node) {
	room := newRoom()
	teacher, pub := goLive(t, a, room)
	const students = 10
	before, bBefore, start := pub.KeyframeRequests(), metric(t, b, "lectern_keyframe_requests_total"), time.Now()

	// Ten students join B at once: B pulls the stream once and primes
	// each of them from its own copy.
	askers, clients := joinAtOnce(t, b, room, students)
	for _, s := range clients {
		require.Equal(t, b.url, s.BaseURL())
		receivesVideo(t, s, teacher.ID(), 30*time.Second)
	}
	joined := pub.KeyframeRequests() - before

	// They all ask for a fresh peer connection at once (subscribe), as
	// soon as the server allows (once a second per stream).
	var newest time.Time
	for _, s := range clients {
		if c := s.SubscriptionOf(teacher.ID(), client.LabelCamera).Created(); c.After(newest) {
			newest = c
		}
	}
	time.Sleep(time.Until(newest.Add(time.Second + 100*time.Millisecond)))
	resubscribed := time.Now()
	for _, s := range clients {
		stream := s.SubscriptionOf(teacher.ID(), client.LabelCamera).ID()
		require.NoError(t, s.Send("subscribe", "subscribe-1", client.StreamRef{Stream: stream}))
	}
	for _, s := range clients {
		waitFor(t, 30*time.Second, "video on the fresh peer connection", func() (bool, string) {
			sub := s.SubscriptionOf(teacher.ID(), client.LabelCamera)
			if sub == nil || sub.Created().Before(resubscribed) || sub.Video().Keyframes == 0 {
				return false, fmt.Sprintf("no new video yet; errors %v", s.ErrorsFor("subscribe"))
			}
			return true, ""
		})
	}
	for _, k := range askers {
		waitFor(t, 10*time.Second, "the student's video stream", func() (bool, string) {
			return k.streams() > 0, "no video SSRC bound yet"
		})
	}
	again := pub.KeyframeRequests() - before

	// Every student sends a PLI at the same moment, every 50 ms for 3 s.
	asked, askedAt := pub.KeyframeRequests(), time.Now()
	sent := askAll(askers, 3*time.Second)
	require.GreaterOrEqual(t, sent, students*30, "the students sent their PLIs")
	waitFor(t, 10*time.Second, "a keyframe request to reach the teacher", func() (bool, string) {
		return pub.KeyframeRequests() > asked, "the teacher got no PLI or FIR"
	})
	time.Sleep(2 * keyframeWindow) // the last requests may still be on their way

	elapsed := time.Since(start)
	got := pub.KeyframeRequests() - before
	fromB := metric(t, b, "lectern_keyframe_requests_total") - bBefore
	limit := uint64(elapsed/keyframeWindow) + 2
	t.Logf("in %v the teacher received %d keyframe requests (limit %d): %d by the joins, %d by the new peer connections, "+
		"%d for %d PLIs of %d students; B sent %v", elapsed.Round(time.Millisecond), got, limit, joined, again-joined,
		got-again, sent, students, fromB)
	require.LessOrEqual(t, got, limit, "the teacher gets at most one keyframe request per %v", keyframeWindow)
	require.LessOrEqual(t, pub.KeyframeRequests()-asked, uint64(time.Since(askedAt)/keyframeWindow)+2,
		"while the students send PLIs, too")
	require.LessOrEqual(t, fromB, float64(limit), "B merges its students' requests before they leave the node")
}

// received is one stream a student receives.
type received struct {
	what    string
	student *client.Client
	owner   string
	label   string
}

// testRelaysBothWays: several relays between the same two nodes at once,
// each its own peer connection between A and B. Class 1's teacher on A
// shares camera and screen with a student on B, so B pulls two streams of
// one class from A; class 2's teacher on B has a student on A, so A pulls
// from B. Every relay carries video, and keeps carrying it: with both ends
// of every relay on their node's one ICE port, the connections had one
// address pair and the nodes' muxes handed one's packets to another.
func testRelaysBothWays(t *testing.T, a, b, c *node) {
	relaysIdle(t, a, b, c)
	room1, room2 := newRoom(), newRoom()
	teacher1, _ := goLive(t, a, room1)
	publishScreen(t, teacher1)
	teacher2, _ := goLive(t, b, room2)
	onB := b.dial(t, b.token(t, room1, auth.RoleStudent, "Student of class 1"), client.Options{})
	onA := a.dial(t, a.token(t, room2, auth.RoleStudent, "Student of class 2"), client.Options{})
	require.Equal(t, b.url, onB.BaseURL())
	require.Equal(t, a.url, onA.BaseURL())
	streams := []received{
		{"class 1's camera on B", onB, teacher1.ID(), client.LabelCamera},
		{"class 1's screen on B", onB, teacher1.ID(), client.LabelScreen},
		{"class 2's camera on A", onA, teacher2.ID(), client.LabelCamera},
	}
	for _, r := range streams {
		receivesLabel(t, r, 30*time.Second)
	}
	waitMetric(t, b, "lectern_relays_in", 2)
	waitMetric(t, a, "lectern_relays_out", 2)
	waitMetric(t, a, "lectern_relays_in", 1)
	waitMetric(t, b, "lectern_relays_out", 1)

	// The clip sends video every 33 ms: 3 s without any is a stall.
	gaps := keepsFlowing(t, 8*time.Second, 3*time.Second, streams, nil)
	t.Logf("longest wait for new video (polled every 250 ms): %s", gaps)
	for n, want := range map[*node][2]float64{a: {1, 2}, b: {2, 1}} {
		require.Equal(t, want[0], metric(t, n, "lectern_relays_in"), "relays into %s", n.name)
		require.Equal(t, want[1], metric(t, n, "lectern_relays_out"), "relays out of %s", n.name)
	}
}

// publishScreen publishes the clip's video as c's screen share.
func publishScreen(t *testing.T, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	media, err := client.NewPublisher(client.PublisherOptions{IVF: clipIVF, StreamID: "screen"})
	require.NoError(t, err)
	pub, err := c.Publish(ctx, client.LabelScreen, media.Tracks())
	require.NoError(t, err)
	require.NoError(t, pub.WaitConnected(ctx))
	media.Start()
	t.Cleanup(media.Stop)
}

// receivesLabel waits until r's student gets video of r's stream.
func receivesLabel(t *testing.T, r received, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, r.what, func() (bool, string) {
		s := r.student.SubscriptionOf(r.owner, r.label)
		if s == nil {
			return false, "no subscription"
		}
		v := s.Video()
		return v.Packets >= 30 && v.Keyframes > 0, fmt.Sprintf("%d video packets, %d keyframes", v.Packets, v.Keyframes)
	})
}

// keepsFlowing watches the video of every stream for d, calling tick
// (when not nil) at every poll: each must keep growing, with no gap of
// stallAfter or more, on the subscription it had at the start. It
// returns the longest gaps seen, for the log.
func keepsFlowing(t *testing.T, d, stallAfter time.Duration, streams []received, tick func()) string {
	t.Helper()
	subs := make([]*client.Subscription, len(streams))
	last := make([]client.TrackStats, len(streams))
	grew := make([]time.Time, len(streams))
	longest := make([]time.Duration, len(streams))
	for i, r := range streams {
		subs[i] = r.student.SubscriptionOf(r.owner, r.label)
		require.NotNil(t, subs[i], r.what)
		last[i], grew[i] = subs[i].Video(), time.Now()
	}
	for start := time.Now(); time.Since(start) < d; {
		time.Sleep(250 * time.Millisecond)
		if tick != nil {
			tick()
		}
		for i, s := range subs {
			v := s.Video()
			if v.Packets > last[i].Packets && v.Bytes > last[i].Bytes {
				longest[i] = max(longest[i], time.Since(grew[i]))
				last[i], grew[i] = v, time.Now()
			}
			require.Less(t, time.Since(grew[i]), stallAfter, "%s: no video for %v, %v into the watch (%d packets)",
				streams[i].what, stallAfter, time.Since(start).Round(time.Millisecond), v.Packets)
		}
	}
	gaps := make([]string, len(streams))
	for i, r := range streams {
		require.Same(t, subs[i], r.student.SubscriptionOf(r.owner, r.label), "%s: the stream was never replaced", r.what)
		gaps[i] = fmt.Sprintf("%s %v", r.what, longest[i].Round(10*time.Millisecond))
	}
	return strings.Join(gaps, ", ")
}

// joinAtOnce joins n students to room on node nd, all at the same time,
// each with a pion API that can send PLIs.
func joinAtOnce(t *testing.T, nd *node, room string, n int) ([]*pliAsker, []*client.Client) {
	t.Helper()
	askers := make([]*pliAsker, n)
	clients := make([]*client.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		askers[i] = &pliAsker{}
		tok := nd.token(t, room, auth.RoleStudent, fmt.Sprintf("Student %d", i))
		api := askers[i].api(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			clients[i], errs[i] = client.Dial(ctx, nd.base, tok, client.Options{API: api, Logger: clientLogger(t)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err)
		t.Cleanup(func() { _ = clients[i].Close() })
	}
	return askers, clients
}

// askAll makes every asker send PLIs at the same moment, every 50 ms, for
// d; it returns the number of PLIs sent.
func askAll(askers []*pliAsker, d time.Duration) int {
	var mu sync.Mutex
	sent := 0
	for start := time.Now(); time.Since(start) < d; time.Sleep(50 * time.Millisecond) {
		var round sync.WaitGroup
		for _, k := range askers {
			round.Add(1)
			go func() {
				defer round.Done()
				n := k.ask()
				mu.Lock()
				sent += n
				mu.Unlock()
			}()
		}
		round.Wait()
	}
	return sent
}

func testRelayTeardown(t *testing.T, a, b, c *node) {
	room := newRoom()
	relaysIdle(t, a, b, c)
	teacher, _ := goLive(t, a, room)
	var students []*client.Client
	for i := range 3 {
		s := b.dial(t, b.token(t, room, auth.RoleStudent, fmt.Sprintf("Student %d", i)), client.Options{})
		receivesVideo(t, s, teacher.ID(), 30*time.Second)
		students = append(students, s)
	}
	// One relay, whatever the number of students on B.
	waitMetric(t, b, "lectern_relays_in", 1)
	waitMetric(t, a, "lectern_relays_out", 1)
	waitMetric(t, b, "lectern_publishers", 1) // the relay is B's one publisher

	for _, s := range students {
		require.NoError(t, s.Close())
	}
	// B pulls nothing any more, and A stops sending.
	waitMetric(t, b, "lectern_relays_in", 0)
	waitMetric(t, b, "lectern_publishers", 0)
	waitMetric(t, a, "lectern_relays_out", 0)
	waitMetric(t, a, "lectern_subscribers", 0)

	s := b.dial(t, b.token(t, room, auth.RoleStudent, "Student again"), client.Options{})
	receivesVideo(t, s, teacher.ID(), 30*time.Second)
	waitMetric(t, b, "lectern_relays_in", 1)
	waitMetric(t, a, "lectern_relays_out", 1)
}

func testRemoteRemove(t *testing.T, a, b, c *node) {
	room := newRoom()
	teacher := a.dial(t, a.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{NoSubscribe: true})
	tok := b.token(t, room, auth.RoleStudent, "Removed")
	s := b.dial(t, tok, client.Options{NoSubscribe: true})
	other := b.dial(t, b.token(t, room, auth.RoleStudent, "Stays"), client.Options{NoSubscribe: true})
	waitFor(t, 10*time.Second, "A to list the students of B", func() (bool, string) {
		_, ok := teacher.Participant(s.ID())
		return ok, fmt.Sprintf("%v", teacher.Participants())
	})

	require.NoError(t, teacher.Remove(s.ID()))
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the removed student's websocket stays open")
	}
	require.Equal(t, 4003, s.CloseCode())
	require.NotEmpty(t, s.Reason(), "the student was told why")
	waitFor(t, 10*time.Second, "the student to leave every list", func() (bool, string) {
		_, onA := teacher.Participant(s.ID())
		_, onB := other.Participant(s.ID())
		return !onA && !onB, fmt.Sprintf("listed on A %v, on B %v", onA, onB)
	})
	require.Empty(t, teacher.ErrorsFor(client.TypeRemove))

	// The token cannot come back: not on B, not on the origin, and not on
	// C, which did not carry the class when the student was removed.
	for _, n := range []*node{b, a, c} {
		requireBanned(t, n, tok)
	}
	_, ok := teacher.Participant(s.ID())
	require.False(t, ok, "a refused rejoin is never listed")
}

// requireBanned: a join with tok on n is refused with 4003, at once or,
// on a node that learns of the ban from the class's other nodes, as soon
// as it has.
func requireBanned(t *testing.T, n *node, tok string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	again, err := client.Dial(ctx, n.base, tok, client.Options{Logger: clientLogger(t), NoSubscribe: true})
	if err != nil {
		require.Equal(t, 4003, client.CloseCode(err), "rejoin on %s: %v", n.name, err)
		return
	}
	defer again.Close()
	select {
	case <-again.Done():
		require.Equal(t, 4003, again.CloseCode(), "rejoin on %s", n.name)
	case <-time.After(10 * time.Second):
		t.Fatalf("the removed student rejoined on %s", n.name)
	}
}

func testEdgeStudentPublishes(t *testing.T, a, b, c *node) {
	room := newRoom()
	relaysIdle(t, a, b, c)
	teacher := a.dial(t, a.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
	speaker := b.dial(t, b.token(t, room, auth.RoleStudent, "Speaker"), client.Options{})
	onC := c.dial(t, c.token(t, room, auth.RoleStudent, "Listener C"), client.Options{})
	onB := b.dial(t, b.token(t, room, auth.RoleStudent, "Listener B"), client.Options{})
	waitFor(t, 10*time.Second, "A to list the speaker", func() (bool, string) {
		_, ok := teacher.Participant(speaker.ID())
		return ok, fmt.Sprintf("%v", teacher.Participants())
	})

	require.NoError(t, teacher.Invite(speaker.ID()))
	waitFor(t, 10*time.Second, "the invitation to reach B", func() (bool, string) {
		return speaker.Me().CanPublish, "cannot publish yet"
	})
	_, pub := publishClip(t, speaker, clipIVF, clipOgg)
	for _, x := range []*client.Client{teacher, onC, onB} {
		receivesVideo(t, x, speaker.ID(), 30*time.Second)
	}
	// B sends the stream once to each other node of the class.
	waitMetric(t, b, "lectern_relays_out", 2)
	waitMetric(t, a, "lectern_relays_in", 1)
	waitMetric(t, c, "lectern_relays_in", 1)

	require.NoError(t, teacher.Revoke(speaker.ID()))
	select {
	case <-pub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked student's stream goes on")
	}
	for _, x := range []*client.Client{teacher, onC, onB} {
		waitFor(t, 10*time.Second, "the stream to end everywhere", func() (bool, string) {
			return x.SubscriptionOf(speaker.ID(), client.LabelCamera) == nil, "still subscribed on " + x.BaseURL()
		})
	}
	waitMetric(t, b, "lectern_relays_out", 0)
	waitMetric(t, a, "lectern_relays_in", 0)
	waitMetric(t, c, "lectern_relays_in", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	media, err := client.NewPublisher(client.PublisherOptions{IVF: clipIVF})
	require.NoError(t, err)
	_, err = speaker.Publish(ctx, client.LabelCamera, media.Tracks())
	require.ErrorIs(t, err, client.ErrForbidden, "revoked: publishing is refused again")
}

func testWHEPOnEdge(t *testing.T, a, b *node) {
	room := newRoom()
	goLive(t, a, room)
	tok := b.token(t, room, auth.RoleStudent, "Player")

	// B serves the viewer itself, from its relay: no redirect.
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	v := newWHEPViewer(t)
	offer := v.offer(t)
	req, err := http.NewRequest(http.MethodPost, b.base+"/whep/"+room, strings.NewReader(offer))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := hc.Do(req)
	require.NoError(t, err)
	body := readAll(t, resp)
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/whep/"+room+"/"), resp.Header.Get("Location"))
	require.NoError(t, v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}))
	waitConnected(t, v.pc)
	v.waitMedia(t, 100)
	require.Equal(t, int32(1), v.firstKey.Load(), "the video starts on a keyframe")
	waitMetric(t, b, "lectern_relays_in", 1)

	status, _, _ := mediaHTTP(t, http.MethodDelete, b.base+resp.Header.Get("Location"), tok, "")
	require.Equal(t, http.StatusOK, status)
	waitMetric(t, b, "lectern_relays_in", 0)
}

// testProfilelessH264OnEdge: GStreamer publishes on A over WHIP as H.264
// with no format parameters; a GStreamer player on B, served from B's
// relay, decodes it.
func testProfilelessH264OnEdge(t *testing.T, a, b *node) {
	room := newRoom()
	startGST(t, "gst_whip.py", a.base+"/whip/"+room, a.token(t, room, auth.RoleTeacher, "Encoder"), "20", "h264", "30").
		line(t, "STATE connected", 30*time.Second)
	player := startGST(t, "gst_whep.py", b.base+"/whep/"+room, b.token(t, room, auth.RoleStudent, "Player"), "3")
	player.line(t, "FIRSTFRAME", 60*time.Second)
	require.Positive(t, metric(t, b, "lectern_relays_in"), "served from B's relay")
	decoded := strings.Fields(player.line(t, "DECODED", 60*time.Second))
	frames, _ := strconv.Atoi(decoded[1])
	require.Greater(t, frames, 30, "frames decoded on the edge: %v", decoded)
	require.Equal(t, []string{"320x240", "H264"}, decoded[2:])
	player.wait(t, 30*time.Second) // its DELETE ends B's relay
	idle := time.Now()
	relaysIdle(t, a, b)
	t.Logf("relays idle %v after the player left", time.Since(idle).Round(time.Millisecond))
}

// offer returns the viewer's complete offer.
func (v *whepViewer) offer(t *testing.T) string {
	t.Helper()
	offer, err := v.pc.CreateOffer(nil)
	require.NoError(t, err)
	gathered := webrtc.GatheringCompletePromise(v.pc)
	require.NoError(t, v.pc.SetLocalDescription(offer))
	<-gathered
	return v.pc.LocalDescription().SDP
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var sb strings.Builder
	_, err := bufio.NewReader(resp.Body).WriteTo(&sb)
	require.NoError(t, err)
	return sb.String()
}

// --- metrics ---

// metric reads one unlabelled sample of n's /metrics, as an operator's
// scraper would.
func metric(t *testing.T, n *node, name string) float64 {
	t.Helper()
	resp, err := http.Get(n.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == name {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	require.NoError(t, sc.Err())
	t.Fatalf("%s has no metric %s", n.name, name)
	return 0
}

// waitMetric waits until n's metric name reads want.
func waitMetric(t *testing.T, n *node, name string, want float64) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%s on %s to be %v", name, n.name, want), func() (bool, string) {
		got := metric(t, n, name)
		return got == want, fmt.Sprintf("it is %v", got)
	})
}

// relaysIdle waits until no node relays anything: the classes of earlier
// steps have emptied.
func relaysIdle(t *testing.T, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		waitMetric(t, n, "lectern_relays_in", 0)
		waitMetric(t, n, "lectern_relays_out", 0)
	}
}

// --- a student that asks for keyframes ---

// pliAsker is an interceptor factory for one student's peer connections:
// it remembers each connection's RTCP writer and the video streams it
// receives, so that the test can send PLIs (RFC 4585 6.3.1) on them as a
// browser does when it cannot decode.
type pliAsker struct {
	mu    sync.Mutex
	conns []*pliConn
}

type pliConn struct {
	interceptor.NoOp
	mu    sync.Mutex
	w     interceptor.RTCPWriter
	ssrcs map[uint32]bool
}

func (k *pliAsker) NewInterceptor(string) (interceptor.Interceptor, error) {
	c := &pliConn{ssrcs: map[uint32]bool{}}
	k.mu.Lock()
	k.conns = append(k.conns, c)
	k.mu.Unlock()
	return c, nil
}

func (c *pliConn) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	c.mu.Lock()
	c.w = w
	c.mu.Unlock()
	return w
}

func (c *pliConn) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	if strings.HasPrefix(strings.ToLower(info.MimeType), "video/") {
		c.mu.Lock()
		c.ssrcs[info.SSRC] = true
		c.mu.Unlock()
	}
	return r
}

func (c *pliConn) UnbindRemoteStream(info *interceptor.StreamInfo) {
	c.mu.Lock()
	delete(c.ssrcs, info.SSRC)
	c.mu.Unlock()
}

// ask sends one PLI on every video stream received; it returns how many.
func (k *pliAsker) ask() int {
	k.mu.Lock()
	conns := append([]*pliConn(nil), k.conns...)
	k.mu.Unlock()
	n := 0
	for _, c := range conns {
		c.mu.Lock()
		for ssrc := range c.ssrcs {
			if _, err := c.w.Write([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}, nil); err == nil {
				n++
			}
		}
		c.mu.Unlock()
	}
	return n
}

// streams counts the video streams received.
func (k *pliAsker) streams() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, c := range k.conns {
		c.mu.Lock()
		n += len(c.ssrcs)
		c.mu.Unlock()
	}
	return n
}

// api builds the student's pion API: what client.NewAPI builds (VP8 and
// Opus, NACK, RTCP reports, loopback only), plus the asker.
func (k *pliAsker) api(t *testing.T) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	require.NoError(t, m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
		PayloadType:        96,
	}, webrtc.RTPCodecTypeVideo))
	require.NoError(t, m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio))
	reg := &interceptor.Registry{}
	require.NoError(t, webrtc.ConfigureNack(m, reg))
	require.NoError(t, webrtc.ConfigureRTCPReports(reg))
	reg.Add(k)
	s := webrtc.SettingEngine{}
	s.SetIncludeLoopbackCandidate(true)
	s.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(s))
}
