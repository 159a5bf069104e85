package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/interceptor"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

// consoleRow is what the console shows of one student's connection.
type consoleRow struct {
	Found   bool   `json:"found"`
	Bitrate string `json:"bitrate"`
	Loss    string `json:"loss"`
	RTT     string `json:"rtt"`
	Jitter  string `json:"jitter"`
	Verdict string `json:"verdict"`
	Status  string `json:"status"`
	Nodes   int    `json:"nodes"`
	NodeStu string `json:"nodeStudents"`
	Live    string `json:"live"`
	Path    string `json:"path"`
	PathRaw string `json:"pathRaw"`
}

func consoleScript(room, participant string) string {
	return fmt.Sprintf(`(() => {
  const q = (el, id) => { const e = el && el.querySelector('[data-testid="' + id + '"]'); return e ? e.textContent : ''; };
  const row = document.querySelector('[data-testid="conn-row"][data-participant=%q]');
  const cls = document.querySelector('[data-testid="class-row"][data-room=%q]');
  const nodes = document.querySelectorAll('[data-testid="node-row"]');
  return {found: !!row, bitrate: q(row, 'conn-bitrate'), loss: q(row, 'conn-loss'), rtt: q(row, 'conn-rtt'),
    jitter: q(row, 'conn-jitter'), verdict: q(row, 'conn-verdict'),
    status: document.querySelector('[data-testid="console-status"]').textContent,
    nodes: nodes.length, nodeStudents: q(nodes[0], 'node-students'), live: q(cls, 'class-live'),
    path: q(row, 'conn-path'), pathRaw: row ? row.querySelector('[data-testid="conn-path"]').dataset.path : ''};
})()`, participant, room)
}

// kbits reads "123 kbit/s" or "1.50 Mbit/s".
func kbits(s string) float64 {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	if f[1] == "Mbit/s" {
		v *= 1000
	}
	return v
}

// TestBrowserOperatorConsole opens /operator in Chromium with an operator
// token while a pion teacher publishes and a pion student watches: the
// console lists the node with its student, the class as live, and the
// student's connection with its candidate type (UDP from a host
// candidate), bitrate, loss, round trip, jitter and a good verdict, and
// keeps updating by itself; its buttons record the class and stop, drain
// the node and undo it. An operator token for
// another class sees neither the node nor the class.
func TestBrowserOperatorConsole(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServer(t, "tokens")
	room, _, students := liveClass(t, srv, "Ada")
	ada := students[0]

	b := newBrowser(t, chromium)
	tb := b.open(t, "operator", srv.base+"/operator#token="+operatorToken(t, srv.signer))
	var first consoleRow
	waitFor(t, 30*time.Second, "the student's connection in the console", func() (bool, string) {
		r, err := eval[consoleRow](tb, consoleScript(room, ada.ID()))
		first = r
		return err == nil && r.Found && r.Verdict == "good" && kbits(r.Bitrate) > 100 && r.RTT != "" &&
				r.Nodes == 1 && r.NodeStu == "1" && r.Live == "live",
			fmt.Sprintf("%+v err=%v", r, err)
	})
	require.Equal(t, "0.0 %", first.Loss)
	// The pion student reaches the node over UDP from its host address.
	require.Equal(t, "host/udp", first.PathRaw)
	require.Equal(t, "UDP (host/udp)", first.Path)
	calm, err := eval[bool](tb, `!!document.querySelector('[data-testid="no-alerts"]')`)
	require.NoError(t, err)
	require.True(t, calm, "a healthy class raises no alert")
	require.Regexp(t, `^\d+ ms$`, first.RTT)
	require.Regexp(t, `^\d+ ms$`, first.Jitter)
	waitFor(t, 15*time.Second, "the console to update by itself", func() (bool, string) {
		r, err := eval[consoleRow](tb, consoleScript(room, ada.ID()))
		return err == nil && r.Status != first.Status && r.Found && kbits(r.Bitrate) > 100,
			fmt.Sprintf("%+v err=%v", r, err)
	})

	// Actions: record the class, stop it, drain the node, undo.
	classSel := fmt.Sprintf(`[data-testid="class-row"][data-room=%q]`, room)
	textOf := func(sel string) string {
		s, err := eval[string](tb, `(() => { const e = document.querySelector(`+strconv.Quote(sel)+`); return e ? e.textContent : ''; })()`)
		require.NoError(t, err)
		return s
	}
	for _, step := range []struct{ button, cell, want string }{
		{classSel + ` [data-testid="record"]`, classSel + ` [data-testid="class-recording"]`, "recording"},
		{classSel + ` [data-testid="stop-recording"]`, classSel + ` [data-testid="class-recording"]`, ""},
		{`[data-testid="drain"]`, `[data-testid="node-row"] td:nth-child(2)`, "alive, draining"},
		{`[data-testid="undrain"]`, `[data-testid="node-row"] td:nth-child(2)`, "alive"},
	} {
		tb.do(t, "click "+step.button, chromedp.WaitVisible(chromedp.CSS(step.button)), chromedp.Click(chromedp.CSS(step.button)))
		waitFor(t, 15*time.Second, step.button+" takes effect", func() (bool, string) {
			got := textOf(step.cell)
			return got == step.want, fmt.Sprintf("%q", got)
		})
		if step.want == "alive, draining" {
			resp, err := http.Get(srv.base + "/readyz")
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "drained from the console")
		}
	}
	var recs struct {
		Recordings []recEntry `json:"recordings"`
	}
	apiCall(t, http.MethodGet, srv.base+"/api/recordings", operatorToken(t, srv.signer), http.StatusOK, &recs)
	require.Len(t, recs.Recordings, 1, "the console's recording is in the catalog")
	require.Equal(t, room, recs.Recordings[0].Room)

	other, err := client.MintToken(srv.signer, newRoom(), auth.RoleOperator, "Other class", "")
	require.NoError(t, err)
	var view struct {
		Nodes       []any `json:"nodes"`
		Classes     []any `json:"classes"`
		Connections []any `json:"connections"`
	}
	apiCall(t, http.MethodGet, srv.base+"/api/operator", other, http.StatusOK, &view)
	require.Empty(t, view.Nodes, "an operator of one class sees no nodes")
	require.Empty(t, view.Classes)
	require.Empty(t, view.Connections)
	apiCall(t, http.MethodGet, srv.base+"/api/operator", srv.token(t, room, auth.RoleTeacher, "T"), http.StatusForbidden, nil)
}

// TestBrowserStatsReachConsole: a student's class page in Chromium
// reports what its browser decodes of the teacher's video, and the
// operator console's data show those figures growing; a pion client's
// report arrives the same way.
func TestBrowserStatsReachConsole(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServer(t, "tokens")
	room, _, pion := liveClass(t, srv, "Ada")
	b := newBrowser(t, chromium)
	tok := srv.token(t, room, auth.RoleStudent, "Bea in Chromium")
	page := b.open(t, "student", srv.base+"/room/"+room+"#token="+tok)
	page.waitVideoPlaying(t)
	require.NoError(t, pion[0].Stats("s-any", 10, 1, 30))

	type row struct {
		Name    string `json:"name"`
		Browser *struct {
			FramesDecoded  uint64  `json:"frames_decoded"`
			Freezes        uint64  `json:"freezes"`
			JitterBufferMs float64 `json:"jitter_buffer_ms"`
		} `json:"browser"`
	}
	op := operatorToken(t, srv.signer)
	frames := func(name string) (uint64, bool) {
		var view struct {
			Connections []row `json:"connections"`
		}
		apiCall(t, http.MethodGet, srv.base+"/api/operator", op, http.StatusOK, &view)
		for _, c := range view.Connections {
			if c.Name == name && c.Browser != nil {
				return c.Browser.FramesDecoded, true
			}
		}
		return 0, false
	}
	var first uint64
	waitFor(t, 20*time.Second, "the page's first report", func() (bool, string) {
		n, ok := frames("Bea in Chromium")
		first = n
		return ok && n > 0, fmt.Sprintf("frames %d, reported %v", n, ok)
	})
	waitFor(t, 20*time.Second, "a later report with more frames", func() (bool, string) {
		n, _ := frames("Bea in Chromium")
		return n > first, fmt.Sprintf("frames %d after %d", n, first)
	})
	n, ok := frames("Ada")
	require.True(t, ok)
	require.Equal(t, uint64(10), n)
}

// TestBrowserTeacherSeesVerdicts: a teacher live from Chromium sees, in
// the participant list, the verdict on each pion student's connection:
// good for one on a clean link, bad for one losing a third of its packets.
func TestBrowserTeacherSeesVerdicts(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServer(t, "tokens")
	room := newRoom()
	b := newBrowser(t, chromium)
	teacher := b.open(t, "teacher", srv.base+"/room/"+room+"#token="+srv.token(t, room, auth.RoleTeacher, "Ms Rivera"))
	teacher.goLive(t)
	ada := srv.dial(t, srv.token(t, room, auth.RoleStudent, "Ada"), client.Options{})
	api, err := client.NewAPI(client.APIOptions{Logger: clientLogger(t), Interceptors: []interceptor.Factory{lossyLink{}}})
	require.NoError(t, err)
	bob := srv.dial(t, srv.token(t, room, auth.RoleStudent, "Bob"), client.Options{API: api})

	script := fmt.Sprintf(`(() => {
  const v = (id) => { const e = document.querySelector('[data-participant-id="' + id + '"] [data-testid="quality"]'); return e ? e.dataset.verdict : ''; };
  return v(%q) + ' ' + v(%q);
})()`, ada.ID(), bob.ID())
	waitFor(t, 60*time.Second, "the verdicts in the teacher's list", func() (bool, string) {
		got, err := eval[string](teacher, script)
		return err == nil && got == "good bad", fmt.Sprintf("%q err=%v", got, err)
	})
}
