package config

import (
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// MaxNodeIDLen bounds a node id: it is one token of NATS subjects and a
// part of file names.
const MaxNodeIDLen = 64

// nodeIDPattern is what a node id may hold: it becomes a NATS subject
// token (no '.', '*', '>' or spaces) and a directory name. package
// cluster applies the same rule (a test there keeps the two in step).
var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// clusterNamePattern is what nats-server accepts as a cluster name.
var clusterNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ValidNodeID reports whether id can name a node.
func ValidNodeID(id string) bool {
	return len(id) <= MaxNodeIDLen && nodeIDPattern.MatchString(id)
}

// DeriveNodeID is the default node id: the host name and the HTTP port,
// "web-3-8080", with every character a node id cannot hold turned into
// '-'. Two nodes on one host differ by port; a node that restarts on the
// same host and port keeps its id.
func DeriveNodeID(hostname string, port int) string {
	suffix := "-" + strconv.Itoa(port)
	var b strings.Builder
	for _, r := range hostname {
		switch {
		case r < 128 && (r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'):
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	host := strings.Trim(b.String(), "-")
	if host == "" {
		host = "lectern"
	}
	if len(host)+len(suffix) > MaxNodeIDLen {
		host = host[:MaxNodeIDLen-len(suffix)]
	}
	return host + suffix
}

// ExternalNATS reports whether the node joins an existing NATS cluster
// rather than running its own server.
func (c Config) ExternalNATS() bool { return len(c.NATS) > 0 }

// validateCluster checks the node's identity and the NATS settings.
func (c Config) validateCluster(bad func(format string, a ...any)) {
	if c.NodeID != "" && !ValidNodeID(c.NodeID) {
		bad("node_id %q: want at most %d letters, digits, '-' or '_'", c.NodeID, MaxNodeIDLen)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") ||
			u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			bad("public_url %q: want http(s)://host[:port] with no path", c.PublicURL)
		}
	}
	if c.MaxStudents < 0 {
		bad("max_students %d: want 0 (no limit) or more", c.MaxStudents)
	}
	for _, u := range c.NATS {
		if err := checkURL(u, "nats", "tls", "ws", "wss"); err != nil {
			bad("nats %q: %v", redactURL(u), err)
		}
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		bad("nats_tls_cert and nats_tls_key: set both or neither")
	}
	if c.ExternalNATS() {
		c.validateExternalOnly(bad)
	} else {
		c.validateEmbedded(bad)
	}
}

// validateExternalOnly rejects embedded-server settings next to --nats:
// they would be silently ignored otherwise.
func (c Config) validateExternalOnly(bad func(format string, a ...any)) {
	if c.NATSListen != "" || c.NATSClusterListen != "" || len(c.NATSRoutes) > 0 {
		bad("nats_listen, nats_cluster_listen and nats_routes configure the embedded NATS server: not with nats")
	}
}

// validateEmbedded checks the embedded server's settings and rejects the
// client-only ones.
func (c Config) validateEmbedded(bad func(format string, a ...any)) {
	if c.NATSCreds != "" || c.NATSTLSCA != "" || c.NATSTLSCert != "" {
		bad("nats_creds and nats_tls_*: only with nats (an external NATS cluster)")
	}
	if c.NATSListen != "" {
		if err := checkListen(c.NATSListen); err != nil {
			bad("nats_listen %q: %v", c.NATSListen, err)
		}
	}
	if c.NATSClusterListen != "" {
		if err := checkListen(c.NATSClusterListen); err != nil {
			bad("nats_cluster_listen %q: %v", c.NATSClusterListen, err)
		}
	}
	if len(c.NATSRoutes) > 0 && c.NATSClusterListen == "" {
		bad("nats_routes: need nats_cluster_listen, the address the other nodes route to")
	}
	if c.NATSClusterListen != "" && len(c.NATSRoutes) == 0 {
		// nats-server refuses clustered JetStream without routes.
		bad("nats_cluster_listen: needs nats_routes (every node's, this one's may be included)")
	}
	for _, r := range c.NATSRoutes {
		if err := checkURL(r, "nats-route", "nats"); err != nil {
			bad("nats_routes %q: %v", redactURL(r), err)
		}
	}
	if !clusterNamePattern.MatchString(c.NATSClusterName) {
		bad("nats_cluster_name %q: want letters, digits, '-' or '_'", c.NATSClusterName)
	}
}

// checkURL accepts scheme://host:port with one of schemes.
func checkURL(s string, schemes ...string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errBadURL(schemes)
	}
	ok := false
	for _, sc := range schemes {
		ok = ok || u.Scheme == sc
	}
	if !ok || u.Host == "" {
		return errBadURL(schemes)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return errBadURL(schemes)
	}
	return nil
}

type urlError string

func (e urlError) Error() string { return string(e) }

func errBadURL(schemes []string) error {
	return urlError("want " + strings.Join(schemes, "|") + "://host:port")
}

// redactURL hides the user part of a URL (a password, or a token used
// as the user name), for logs and errors.
func redactURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil && strings.Contains(s, "@"):
		return "(unparsable URL with a user part)"
	case err != nil || u.User == nil:
		return s
	}
	u.User = url.User("REDACTED")
	return u.String()
}

// RedactedNATS is NATS with any password hidden.
func (c Config) RedactedNATS() []string {
	out := make([]string, len(c.NATS))
	for i, u := range c.NATS {
		out[i] = redactURL(u)
	}
	return out
}
