package signaling

// A class page that holds a camera keeps it when its node goes away: it
// opens its websocket to another node of the cluster instead of loading
// that node's page, which would stop every local track and ask for the
// camera again on another origin (docs/cluster.md, "What clients do").
// Two browser rules would refuse that, and both are widened here for the
// cluster's own nodes only: the page's Content-Security-Policy
// (connect-src, which the node list at page load feeds) and the
// websocket's Origin check (RFC 6455 section 10.2), which must still
// accept a page of a node that has died since: so every node URL heard of
// is remembered for the life of this node.

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"lectern/cluster"
)

// maxNodeOrigins bounds the remembered origins. Node URLs come from the
// operators' configuration, so the bound is never reached in practice;
// past it, only the live nodes are accepted (accepts).
const maxNodeOrigins = 1024

// nodeOrigins is the set of origins of the cluster's nodes.
type nodeOrigins struct {
	mu   sync.Mutex // leaf
	seen map[string]struct{}
}

// remember adds the nodes' URLs. It takes the live nodes, so that a node
// remembered before its death is still known after it.
func (o *nodeOrigins) remember(nodes []cluster.NodeStatus) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen == nil {
		o.seen = map[string]struct{}{}
	}
	for _, n := range nodes {
		if origin := webOrigin(n.URL); origin != "" && len(o.seen) < maxNodeOrigins {
			o.seen[origin] = struct{}{}
		}
	}
}

// accepts reports whether origin is a page of one of the cluster's
// nodes: one of live (the registry's live nodes), looked at first so that
// a live node is accepted even past maxNodeOrigins, or one remembered.
// It remembers live.
func (o *nodeOrigins) accepts(origin string, live []cluster.NodeStatus) bool {
	o.remember(live)
	origin = webOrigin(origin)
	if origin == "" {
		return false
	}
	for _, n := range live {
		if webOrigin(n.URL) == origin {
			return true
		}
	}
	return o.has(origin)
}

func (o *nodeOrigins) has(origin string) bool {
	origin = webOrigin(origin)
	if origin == "" {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.seen[origin]
	return ok
}

// webOrigin is the serialized origin of an http(s) URL (RFC 6454 section
// 6.1: lower-case scheme and host, the default port left out), or "".
// Node URLs come from NATS into the class page's Content-Security-Policy
// (connect-src), and url.Parse takes hosts such as "evil.com;base-uri *":
// so the host must be a name of letters, digits, dots and hyphens or a
// bracketed IPv6 address, and the port digits, with nothing that could
// end a source or a directive (W3C CSP 3, section 2.3.1).
func webOrigin(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	host, port, ok := splitOriginHost(u.Host)
	if !ok {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		return scheme + "://" + host
	}
	return scheme + "://" + host + ":" + port
}

// splitOriginHost splits a URL's host[:port], the host lower-cased (an
// IPv6 address keeps its brackets); false unless both are well formed.
func splitOriginHost(hostport string) (host, port string, ok bool) {
	host = hostport
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", "", false
		}
		ip := host[1:end]
		if !strings.Contains(ip, ":") || net.ParseIP(ip) == nil {
			return "", "", false // not IPv6, or with a zone
		}
		host, port = host[:end+1], host[end+1:]
	} else {
		if i := strings.IndexByte(host, ':'); i >= 0 {
			host, port = host[:i], host[i:]
		}
		if !isHostName(host) {
			return "", "", false
		}
	}
	if port != "" {
		if port, ok = strings.CutPrefix(port, ":"); !ok || !isDigits(port) {
			return "", "", false
		}
	}
	return strings.ToLower(host), port, true
}

// isHostName: non-empty, and letters, digits, dots and hyphens only.
func isHostName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// isDigits: ASCII digits only (empty is fine: "host:" has no port).
func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// socketOrigin is the ws(s) counterpart of an http(s) origin.
func socketOrigin(origin string) string {
	if rest, ok := strings.CutPrefix(origin, "https://"); ok {
		return "wss://" + rest
	}
	return "ws://" + strings.TrimPrefix(origin, "http://")
}

// checkOrigin is the websocket upgrader's Origin check: the server's own
// host, a client without Origin, or a page of one of the cluster's nodes.
func (s *Server) checkOrigin(r *http.Request) bool {
	if sameOrigin(r) {
		return true
	}
	l := s.link()
	if l == nil {
		return false
	}
	return l.origins.accepts(r.Header.Get("Origin"), l.node.Registry.Nodes())
}

// connectSources are the CSP connect-src sources of the other live nodes:
// a page probes them (GET /readyz) and opens its websocket there when its
// own node goes away. Nodes that start later are not in a page already
// loaded: its probes of them fail, and it tries the nodes it may reach.
func (s *Server) connectSources() []string {
	l := s.link()
	if l == nil {
		return nil
	}
	var out []string
	for _, n := range l.node.Registry.Nodes() {
		if origin := webOrigin(n.URL); origin != "" && !n.Self {
			out = append(out, origin, socketOrigin(origin))
		}
	}
	return out
}
