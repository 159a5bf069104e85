package signaling

import (
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
