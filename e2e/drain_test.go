package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
	"lectern/cluster"
	"lectern/signaling"
)

// TestClusterDrain drains node A of a cluster while it carries a class: A
// stops being ready and announces itself full, hands the class to B and
// sends its teacher and student there; once they joined B again (the
// teacher publishing anew, as the class page does) the student's video is
// back within seconds, A is empty, B's operator console shows A draining
// and the class on B, and new participants reaching A go to B. Undone, A
// is ready again.
func TestClusterDrain(t *testing.T) {
	t.Parallel()
	// Three nodes: clustered JetStream needs a quorum; C is full, so B is
	// the one place left.
	nodes := startCluster(t, 0, 0, 1)
	a, b, c := nodes[0], nodes[1], nodes[2]
	c.dial(t, c.token(t, newRoom(), auth.RoleStudent, "Fills C"), client.Options{NoSubscribe: true})
	room := newRoom()
	teacher := a.dial(t, a.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
	publishClip(t, teacher, clipIVF, clipOgg)
	student := a.dial(t, a.token(t, room, auth.RoleStudent, "Student"), client.Options{})
	receivesVideo(t, student, teacher.ID(), 20*time.Second)

	op := operatorToken(t, a.signer)
	// C's load reaches A with its next announcement: until A sees C full,
	// C is a place the drain may choose.
	waitFor(t, 20*time.Second, "A sees C full", func() (bool, string) {
		var ns struct {
			Nodes []cluster.NodeStatus `json:"nodes"`
		}
		getJSON(t, a.base+"/api/nodes", op, &ns)
		for _, n := range ns.Nodes {
			if n.URL == c.url {
				return n.Full(), fmt.Sprintf("%+v", n.Load)
			}
		}
		return false, "C not listed"
	})
	oneClass, err := client.MintToken(a.signer, room, auth.RoleOperator, "Class operator", "")
	require.NoError(t, err)
	apiCall(t, http.MethodPost, a.base+"/api/drain", oneClass, http.StatusForbidden, nil)
	var st signaling.DrainState
	start := time.Now()
	apiCall(t, http.MethodPost, a.base+"/api/drain", op, http.StatusOK, &st)
	require.True(t, st.Draining)
	resp, err := http.Get(a.base + "/readyz")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "draining\n", string(body))

	// Both are sent to B, and join there again.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var moved []*client.Client
	for _, cl := range []*client.Client{teacher, student} {
		select {
		case <-cl.Done():
		case <-ctx.Done():
			t.Fatal("A did not move its class")
		}
		require.NotNil(t, cl.Redirected(), "redirected, not dropped: %v", cl.Err())
		require.Equal(t, b.url, cl.Redirected().URL)
		nc, err := cl.Reconnect(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = nc.Close() })
		require.Equal(t, b.url, nc.BaseURL())
		moved = append(moved, nc)
	}
	publishClip(t, moved[0], clipIVF, clipOgg)
	receivesVideo(t, moved[1], moved[0].ID(), 20*time.Second)
	back := time.Since(start)
	t.Logf("video back on B %v after the drain began", back.Round(time.Millisecond))
	require.Less(t, back, 15*time.Second)
	waitFor(t, 10*time.Second, "A empty", func() (bool, string) {
		apiCall(t, http.MethodGet, a.base+"/api/drain", op, http.StatusOK, &st)
		return st.Participants == 0, fmt.Sprintf("%+v", st)
	})

	// The operator console's data, read from B, show the three nodes, A
	// draining, and the class now on B.
	var view struct {
		Nodes []struct {
			ID       string `json:"id"`
			Draining bool   `json:"draining"`
			Liveness string `json:"liveness"`
		} `json:"nodes"`
		Classes []struct {
			Room, Origin string
		} `json:"classes"`
	}
	waitFor(t, 10*time.Second, "B's console view", func() (bool, string) {
		apiCall(t, http.MethodGet, b.base+"/api/operator", op, http.StatusOK, &view)
		draining := map[string]bool{}
		for _, n := range view.Nodes {
			draining[n.ID] = n.Draining && n.Liveness == "alive"
		}
		return len(view.Nodes) == 3 && draining[a.name] && !draining[b.name], fmt.Sprintf("%+v", view.Nodes)
	})
	require.Contains(t, view.Classes, struct{ Room, Origin string }{room, b.name})
	for _, n := range nodes {
		require.Eventually(t, func() bool {
			s, ok := n.app.Cluster().Registry.Node(cluster.NodeID(a.name))
			return ok && s.Full() && s.Load.Draining
		}, 10*time.Second, 20*time.Millisecond, "%s hears that A drains", n.name)
	}

	late := a.dial(t, a.token(t, room, auth.RoleStudent, "Late student"), client.Options{NoSubscribe: true})
	require.Equal(t, b.url, late.BaseURL(), "a new student goes to B")
	other := a.dial(t, a.token(t, newRoom(), auth.RoleTeacher, "New class"), client.Options{NoSubscribe: true})
	require.Equal(t, b.url, other.BaseURL(), "a new class goes to B")

	apiCall(t, http.MethodDelete, a.base+"/api/drain", op, http.StatusOK, &st)
	require.False(t, st.Draining)
	resp, err = http.Get(a.base + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestBrowserClusterDrain: a teacher live from Chromium and a student in
// Chromium, both on node A of three; the operator drains A from the
// console opened on B, which lists the three nodes. Both pages move to B
// by themselves, the teacher's page publishes again there, and the
// student's video plays again.
func TestBrowserClusterDrain(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	nodes := startCluster(t, 0, 0, 1)
	a, b, c := nodes[0], nodes[1], nodes[2]
	c.dial(t, c.token(t, newRoom(), auth.RoleStudent, "Fills C"), client.Options{NoSubscribe: true})
	room := newRoom()
	br := newBrowser(t, chromium)
	teacher := br.open(t, "teacher", a.base+"/room/"+room+"#token="+a.token(t, room, auth.RoleTeacher, "Ms Rivera"))
	teacher.goLive(t)
	student := br.open(t, "student", a.base+"/room/"+room+"#token="+a.token(t, room, auth.RoleStudent, "Ada"))
	student.waitVideoPlaying(t)
	student.waitState(t, 10*time.Second, "on A", func(s pageState) bool { return s.Node == a.name })

	console := br.open(t, "console", b.base+"/operator#token="+operatorToken(t, b.signer))
	waitFor(t, 20*time.Second, "three nodes in B's console", func() (bool, string) {
		n, err := eval[int](console, `document.querySelectorAll('[data-testid="node-row"]').length`)
		return err == nil && n == 3, fmt.Sprintf("%d err=%v", n, err)
	})
	// The console drains the node it runs on; A is drained through its API.
	var st signaling.DrainState
	apiCall(t, http.MethodPost, a.base+"/api/drain", operatorToken(t, a.signer), http.StatusOK, &st)
	start := time.Now()
	for _, tb := range []*tab{teacher, student} {
		tb.waitState(t, 30*time.Second, "moved to B", func(s pageState) bool { return s.Connected && s.Node == b.name })
	}
	teacher.waitState(t, 30*time.Second, "on air again", func(s pageState) bool { return s.Publishing["camera"].Status == "live" })
	student.waitVideoPlaying(t)
	t.Logf("both pages on B and the video playing %v after the drain", time.Since(start).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "A empty", func() (bool, string) {
		apiCall(t, http.MethodGet, a.base+"/api/drain", operatorToken(t, a.signer), http.StatusOK, &st)
		return st.Participants == 0, fmt.Sprintf("%+v", st)
	})
	waitFor(t, 10*time.Second, "B's console shows A draining", func() (bool, string) {
		got, err := eval[string](console, fmt.Sprintf(
			`(() => { const r = document.querySelector('[data-testid="node-row"][data-node=%q]'); return r ? r.children[1].textContent : ''; })()`, a.name))
		return err == nil && got == "alive, draining", fmt.Sprintf("%q err=%v", got, err)
	})
}
