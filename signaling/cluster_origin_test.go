package signaling

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"lectern/cluster"
)

func TestWebOrigin(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
		{"HTTPS://N1.Example.org/path?q#f", "https://n1.example.org"},
		{"https://n1.example.org:443", "https://n1.example.org"},
		{"http://n1.example.org:80", "http://n1.example.org"},
		{"https://n1.example.org:8443", "https://n1.example.org:8443"},
		{"http://[::1]:8080", "http://[::1]:8080"},
		{" http://a:1 ", "http://a:1"},
		{"ws://127.0.0.1:8080", ""},
		{"javascript:alert(1)", ""},
		{"null", ""},
		{"", ""},
		{"http://", ""},
		{"http://[fe80::1%25eth0]:8080", ""}, // a zone
		{"http://[127.0.0.1]:8080", ""},
		{"http://[::1]x", ""},
		{"http://[::1", ""},
		{"http://a:", "http://a"},
		{"http://n1.example.org:8080:9090", ""},
		{"http://user:pw@n1.example.org:8080", "http://n1.example.org:8080"},
		// Node URLs reach a Content-Security-Policy header: nothing may
		// end a source or a directive there.
		{"http://evil.com;base-uri *", ""},
		{"http://evil.com;base-uri", ""},
		{"http://evil.com;script-src:80", ""},
		{"http://evil.com;base-uri%20*", ""},
		{"http://evil.com%3Bbase-uri", ""},
		{"http://evil.com,x", ""},
		{"http://evil.com'", ""},
		{"http://evil.com*", ""},
		{"http://evil.com_x", ""},
		{"http://évil.com", ""},
		{"http://evil.com:80;x", ""},
		{"http://evil.com:8%30", ""},
		{"http://[::1];x", ""},
		{"http://[::1]:80;x", ""},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, webOrigin(tc.in), tc.in)
	}
	require.Equal(t, "wss://n1.example.org", socketOrigin("https://n1.example.org"))
	require.Equal(t, "ws://127.0.0.1:8080", socketOrigin("http://127.0.0.1:8080"))
}

func TestNodeOriginsRemembersDeadNodes(t *testing.T) {
	t.Parallel()
	var o nodeOrigins
	require.False(t, o.has("http://127.0.0.1:8080"))
	node := func(url string) cluster.NodeStatus {
		return cluster.NodeStatus{NodeInfo: cluster.NodeInfo{URL: url}}
	}
	o.remember([]cluster.NodeStatus{node("http://127.0.0.1:8080/"), node("https://n2.example.org:443"), node("")})
	o.remember(nil) // the first node died: the registry lists nothing more
	cases := []struct {
		origin string
		want   bool
	}{
		{"http://127.0.0.1:8080", true},
		{"https://n2.example.org", true},
		{"HTTPS://N2.EXAMPLE.ORG", true},
		{"http://n2.example.org", false},
		{"http://127.0.0.1:8081", false},
		{"http://evil.example", false},
		{"null", false},
		{"", false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, o.has(tc.origin), tc.origin)
	}
}

// TestNodeOriginsAcceptsLiveNodesPastBound: once maxNodeOrigins origins
// are remembered, a live node's page is still accepted; it is refused
// only once the node is no longer live.
func TestNodeOriginsAcceptsLiveNodesPastBound(t *testing.T) {
	t.Parallel()
	node := func(url string) cluster.NodeStatus {
		return cluster.NodeStatus{NodeInfo: cluster.NodeInfo{URL: url}}
	}
	var o nodeOrigins
	var many []cluster.NodeStatus
	for i := range maxNodeOrigins {
		many = append(many, node(fmt.Sprintf("http://n%d.example.org", i)))
	}
	o.remember(many)
	live := []cluster.NodeStatus{node("https://late.example.org:8443/")}
	cases := []struct {
		origin string
		live   []cluster.NodeStatus
		want   bool
	}{
		{"https://late.example.org:8443", live, true},
		{"HTTPS://LATE.example.org:8443", live, true},
		{"http://late.example.org:8443", live, false},
		{"http://n7.example.org", live, true},
		{"http://n7.example.org", nil, true},
		{"https://late.example.org:8443", nil, false}, // gone, never remembered
		{"http://evil.example", live, false},
		{"", live, false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, o.accepts(tc.origin, tc.live), "%s live=%d", tc.origin, len(tc.live))
	}
}
