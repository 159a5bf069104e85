package config

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// field binds one Config field to its names in every source. The table
// is written out by hand rather than derived by reflection, so each name
// can be grepped for; TestFieldTableMatchesYAMLTags keeps it in step with
// the struct's yaml tags.
type field struct {
	key   string // YAML key; "" when the field cannot be set from YAML
	env   string // environment variable
	flag  string // flag name; "" when there is no flag
	usage string
	value value
}

// value is a flag.Value bound to a field of one Config.
type value interface {
	String() string
	Set(string) error
}

// fields returns the table bound to c's fields.
func (c *Config) fields() []field {
	return append([]field{
		{"http", "LECTERN_HTTP", "http", "HTTP listen address (host:port)", stringValue{&c.HTTP}},
		{"udp_port", "LECTERN_UDP_PORT", "udp-port", "ICE UDP port (0: any free port)", intValue{&c.UDPPort}},
		{"tcp_port", "LECTERN_TCP_PORT", "tcp-port", "ICE-TCP port (0: any free port, -1: disabled)", intValue{&c.TCPPort}},
		{"public_ip", "LECTERN_PUBLIC_IP", "public-ip", "the only IP address offered to WebRTC clients (empty: every local address)", stringValue{&c.PublicIP}},
		{"data", "LECTERN_DATA", "data", "data directory (secret, NATS store)", stringValue{&c.Data}},
		{"auth", "LECTERN_AUTH", "auth", `who may create classes: "open" (anyone reaching the lobby) or "tokens" (only holders of tokens signed with the secret)`, stringValue{&c.Auth}},
		{"log_level", "LECTERN_LOG_LEVEL", "log-level", "trace, debug, info, warn or error", stringValue{&c.LogLevel}},
		{"log_format", "LECTERN_LOG_FORMAT", "log-format", "auto (console on a terminal, else json), console or json", stringValue{&c.LogFormat}},
		{"invite_ttl", "LECTERN_INVITE_TTL", "invite-ttl", "how long links made in the lobby stay valid", durationValue{&c.InviteTTL}},
		{"shutdown_timeout", "LECTERN_SHUTDOWN_TIMEOUT", "shutdown-timeout", "how long a graceful stop may take", durationValue{&c.ShutdownTimeout}},
		{"secret_file", "LECTERN_SECRET_FILE", "secret-file", "file holding the token secret, created if missing (empty: <data>/secret)", stringValue{&c.SecretFile}},
		{"", "LECTERN_SECRET", "", "token signing secret, at least 32 bytes (overrides the secret file)", stringValue{&c.Secret}},
		{"node_id", "LECTERN_NODE_ID", "node-id", "this node's name in the cluster (empty: host name and HTTP port)", stringValue{&c.NodeID}},
		{"public_url", "LECTERN_PUBLIC_URL", "public-url", "base URL clients reach this node at: other nodes redirect clients to it, and https:// marks the replay cookie Secure (empty: from the HTTP address)", stringValue{&c.PublicURL}},
		{"max_students", "LECTERN_MAX_STUDENTS", "max-students", "students this node takes before sending new ones to another node (0: no limit)", intValue{&c.MaxStudents}},
		{"gc_percent", "LECTERN_GC_PERCENT", "gc-percent", "garbage collector target, as Go's GOGC: heap growth in percent between collections (lower: less memory, more collecting)", intValue{&c.GCPercent}},
		{"metrics_class_labels", "LECTERN_METRICS_CLASS_LABELS", "metrics-class-labels", "export per-class series in /metrics for at most this many of the node's largest classes (0: none)", intValue{&c.MetricsClassLabels}},
		{"nats", "LECTERN_NATS", "nats", "comma-separated URLs of an existing NATS cluster to join (empty: embedded NATS server)", listValue{&c.NATS}},
		{"nats_creds", "LECTERN_NATS_CREDS", "nats-creds", "NATS credentials file (with --nats)", stringValue{&c.NATSCreds}},
		{"nats_tls_ca", "LECTERN_NATS_TLS_CA", "nats-tls-ca", "PEM file of CAs for the NATS servers' certificates (with --nats)", stringValue{&c.NATSTLSCA}},
		{"nats_tls_cert", "LECTERN_NATS_TLS_CERT", "nats-tls-cert", "PEM client certificate for NATS (with --nats)", stringValue{&c.NATSTLSCert}},
		{"nats_tls_key", "LECTERN_NATS_TLS_KEY", "nats-tls-key", "PEM key of --nats-tls-cert", stringValue{&c.NATSTLSKey}},
		{"nats_listen", "LECTERN_NATS_LISTEN", "nats-listen", "embedded NATS client listen address (empty: inside the process only)", stringValue{&c.NATSListen}},
		{"nats_cluster_listen", "LECTERN_NATS_CLUSTER_LISTEN", "nats-cluster-listen", "embedded NATS route listen address, e.g. 10.0.0.5:6222 (empty: no NATS cluster)", stringValue{&c.NATSClusterListen}},
		{"nats_routes", "LECTERN_NATS_ROUTES", "nats-routes", "comma-separated routes to the other nodes' embedded NATS servers, e.g. nats-route://10.0.0.6:6222", listValue{&c.NATSRoutes}},
		{"nats_cluster_name", "LECTERN_NATS_CLUSTER_NAME", "nats-cluster-name", "name of the embedded NATS cluster", stringValue{&c.NATSClusterName}},
	}, append(append(c.recordingFields(), c.limitsFields()...), c.connectivityFields()...)...)
}

type stringValue struct{ p *string }

func (v stringValue) Set(s string) error { *v.p = s; return nil }

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// listValue is a comma-separated list in flags and the environment, a
// YAML sequence in the file. Blank items are dropped; "" is the empty list.
type listValue struct{ p *[]string }

func (v listValue) Set(s string) error {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	*v.p = out
	return nil
}

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

type intValue struct{ p *int }

func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want a whole number")
	}
	*v.p = n
	return nil
}

func (v intValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}

type durationValue struct{ p *time.Duration }

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 90s, 30m or 12h")
	}
	*v.p = d
	return nil
}

func (v durationValue) String() string {
	if v.p == nil {
		return "0s"
	}
	return v.p.String()
}
