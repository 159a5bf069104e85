package e2e

import (
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

// TestClusterDrain drains node A of a cluster while it carries a
// class: A stops being ready, announces itself full, keeps its class and
// its student going, sends a new student of that class to B (which pulls
// the teacher from A) and the teacher of a new class to B, and B's operator
// console shows A draining and the class on A; once its
// participants leave it reports itself empty, and undone, it is ready.
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
	stay := a.dial(t, a.token(t, room, auth.RoleStudent, "Stays on A"), client.Options{})
	receivesVideo(t, stay, teacher.ID(), 20*time.Second)

	op := operatorToken(t, a.signer)
	oneClass, err := client.MintToken(a.signer, room, auth.RoleOperator, "Class operator", "")
	require.NoError(t, err)
	apiCall(t, http.MethodPost, a.base+"/api/drain", oneClass, http.StatusForbidden, nil)
	var st signaling.DrainState
	apiCall(t, http.MethodPost, a.base+"/api/drain", op, http.StatusOK, &st)
	require.Equal(t, signaling.DrainState{Draining: true, Participants: 2, Students: 1, Classes: 1}, st)
	resp, err := http.Get(a.base + "/readyz")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "draining\n", string(body))
	for _, n := range nodes {
		require.Eventually(t, func() bool {
			s, ok := n.app.Cluster().Registry.Node(cluster.NodeID(a.name))
			return ok && s.Full() && s.Load.Draining
		}, 10*time.Second, 20*time.Millisecond, "%s hears that A drains", n.name)
	}

	// The operator console's data, read from B, show the three nodes, A
	// draining, and the class with its origin on A.
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
	require.Contains(t, view.Classes, struct{ Room, Origin string }{room, a.name})

	moved := a.dial(t, a.token(t, room, auth.RoleStudent, "Sent to B"), client.Options{})
	require.Equal(t, b.url, moved.BaseURL(), "a new student goes to B")
	receivesVideo(t, moved, teacher.ID(), 20*time.Second)
	other := newRoom()
	newTeacher := a.dial(t, a.token(t, other, auth.RoleTeacher, "New class"), client.Options{NoSubscribe: true})
	require.Equal(t, b.url, newTeacher.BaseURL(), "a new class goes to B")
	require.Equal(t, a.url, teacher.BaseURL())
	receivesVideo(t, stay, teacher.ID(), 10*time.Second)

	require.NoError(t, stay.Close())
	require.NoError(t, teacher.Close())
	waitFor(t, 10*time.Second, "A empty", func() (bool, string) {
		apiCall(t, http.MethodGet, a.base+"/api/drain", op, http.StatusOK, &st)
		return st.Participants == 0, "still there"
	})
	apiCall(t, http.MethodDelete, a.base+"/api/drain", op, http.StatusOK, &st)
	require.False(t, st.Draining)
	resp, err = http.Get(a.base + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
