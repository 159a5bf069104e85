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
