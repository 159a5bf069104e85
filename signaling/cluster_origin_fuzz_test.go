package signaling

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"lectern/cluster"
)

// FuzzOrigin checks the websocket's Origin check (RFC 6455 section 10.2)
// and webOrigin, whose result goes into the class page's CSP: with a
// fuzzed Origin header and Host, sameOrigin accepts only the server's own
// host or no Origin; webOrigin gives "" or a serialized origin (RFC 6454
// 6.1) of nothing but scheme, host name or bracketed IPv6, and digits,
// unchanged when serialized again; a cluster's nodes accept an origin
// only when it is one of theirs. Seeds: origins browsers send, hosts of
// a deployment behind a proxy, one of the CSP injections refused before.
func FuzzOrigin(f *testing.F) {
	f.Fuzz(func(t *testing.T, origin, host string) {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.Host = host
		r.Header.Set("Origin", origin)
		if sameOrigin(r) && r.Header.Get("Origin") != "" {
			u, err := url.Parse(r.Header.Get("Origin"))
			if err != nil || !strings.EqualFold(u.Host, host) {
				t.Fatalf("origin %q accepted for host %q", origin, host)
			}
		}
		w := webOrigin(origin)
		if w != "" {
			checkSerialized(t, origin, w)
			if again := webOrigin(w); again != w {
				t.Fatalf("origin %q serialized as %q, then %q", origin, w, again)
			}
			if s := socketOrigin(w); !strings.HasPrefix(s, "ws://") && !strings.HasPrefix(s, "wss://") {
				t.Fatalf("socket origin %q of %q", s, w)
			}
		}
		var o nodeOrigins
		node := "http://" + host
		accepted := o.accepts(origin, []cluster.NodeStatus{{NodeInfo: cluster.NodeInfo{URL: node}}})
		if accepted != (w != "" && w == webOrigin(node)) {
			t.Fatalf("origin %q accepted=%v with the node %q", origin, accepted, node)
		}
		if o.has(origin) != accepted {
			t.Fatalf("origin %q of a node not remembered", origin)
		}
	})
}

// checkSerialized: scheme "://" host [":" port], lower case, with no
// character that could end a CSP source or directive.
func checkSerialized(t *testing.T, raw, w string) {
	t.Helper()
	rest, ok := strings.CutPrefix(w, "http://")
	if !ok {
		rest, ok = strings.CutPrefix(w, "https://")
	}
	if !ok || rest == "" || rest != strings.ToLower(rest) {
		t.Fatalf("origin %q serialized as %q", raw, w)
	}
	for _, c := range []byte(rest) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte(".-:[]", c) >= 0) {
			t.Fatalf("origin %q serialized as %q, with %q", raw, w, c)
		}
	}
}
