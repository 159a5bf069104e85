package e2e

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
)

// TestGoLiveJoiners: a class starts, and students pile in at once. The
// teacher publishes from GStreamer over WHIP with a keyframe every two
// seconds and never answers keyframe requests (as files, GStreamer and
// many hardware encoders do); students join through WHEP at 50 a second
// from 300 ms after the publisher's connection is up, all inside its
// first keyframe interval. Each starts on a keyframe within 250 ms of
// connecting, without waiting for the publisher's next keyframe. Not
// parallel: the wait it bounds is one of latency, kept apart from the
// other tests' load.
func TestGoLiveJoiners(t *testing.T) {
	srv := startServer(t, "tokens")
	room := newRoom()
	pub := startGST(t, "gst_whip.py", srv.base+"/whip/"+room, srv.token(t, room, auth.RoleTeacher, "GStreamer"), "8", "vp8", "60")
	pub.line(t, "POSTED 201", 30*time.Second)
	pub.line(t, "STATE connected", 30*time.Second)

	const students = 25
	viewers := make([]*whepViewer, students)
	var wg sync.WaitGroup
	start := time.Now().Add(300 * time.Millisecond)
	for i := range viewers {
		time.Sleep(time.Until(start.Add(time.Duration(i) * 20 * time.Millisecond))) // 50 joins a second
		viewers[i] = newWHEPViewer(t)
		tok := srv.token(t, room, auth.RoleStudent, "Student")
		wg.Add(1)
		go func() {
			defer wg.Done()
			negotiate(t, viewers[i].pc, srv.base+"/whep/"+room, tok)
			waitConnected(t, viewers[i].pc)
		}()
	}
	wg.Wait()
	waits := make([]time.Duration, students)
	for i, v := range viewers {
		waitFor(t, 10*time.Second, "first keyframe", func() (bool, string) { return v.keyAt.Load() != 0, "" })
		require.Equal(t, int32(1), v.firstKey.Load(), "student %d starts on a keyframe", i)
		waits[i] = time.Duration(v.keyAt.Load() - v.upAt.Load())
	}
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	t.Logf("connected to first keyframe: p50 %v, p95 %v, max %v", waits[students/2], waits[students*95/100], waits[students-1])
	require.Less(t, waits[students-1], 250*time.Millisecond, "the slowest student's wait for a keyframe")
}
