// Package config is Lectern's one configuration struct and its loading:
// defaults, then a YAML file, then LECTERN_* environment variables, then
// command-line flags, then Validate. Only cmd/ reads the process's
// arguments and environment; it passes them in here and hands the result
// to constructors.
package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"lectern/auth"
)

// Auth modes (signaling.AuthMode has the same values).
const (
	// AuthOpen lets the lobby create classes and mint their links.
	AuthOpen = "open"
	// AuthTokens accepts only tokens minted elsewhere with the secret.
	AuthTokens = "tokens"
)

// Log formats.
const (
	// LogAuto is console on a terminal, JSON otherwise.
	LogAuto = "auto"
	// LogConsole is human-readable lines.
	LogConsole = "console"
	// LogJSON is one JSON object per line.
	LogJSON = "json"
)

// Config is everything one Lectern node is configured with.
type Config struct {
	// HTTP is the listen address of the pages, API, websocket and metrics.
	HTTP string `yaml:"http"`
	// UDPPort is the one UDP port carrying every client's ICE session (0: any
	// free port); relays pulled from other nodes use ephemeral ports.
	UDPPort int `yaml:"udp_port"`
	// TCPPort is the ICE-TCP fallback port (0: any free port, -1: disabled).
	TCPPort int `yaml:"tcp_port"`
	// PublicIP, when set, is the only address the server offers in ICE.
	PublicIP string `yaml:"public_ip"`
	// Data is the directory holding the secret and the NATS store.
	Data string `yaml:"data"`
	// Auth is AuthOpen or AuthTokens.
	Auth string `yaml:"auth"`
	// LogLevel is a zerolog level name: trace, debug, info, warn, error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is LogAuto, LogConsole or LogJSON.
	LogFormat string `yaml:"log_format"`
	// InviteTTL is how long links made in the lobby stay valid.
	InviteTTL time.Duration `yaml:"invite_ttl"`
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Secret is the token signing secret. It comes only from the
	// environment (LECTERN_SECRET): a flag would show it to every user of
	// the machine in the process list, and YAML files end up in version
	// control. It is never logged.
	Secret string `yaml:"-"`
	// SecretFile holds the secret when Secret is empty; "" means <Data>/secret.
	SecretFile string `yaml:"secret_file"`

	// NodeID names this node in the cluster; "" derives it from the host
	// name and the HTTP port (DeriveNodeID).
	NodeID string `yaml:"node_id"`
	// PublicURL is the base URL clients reach this node at: other nodes
	// send clients there when they redirect them here, and an https://
	// one marks the replay cookie Secure; "" derives it from the bound
	// HTTP address.
	PublicURL string `yaml:"public_url"`
	// MaxStudents is how many students this node takes before it sends
	// new ones to another node (0: no limit).
	MaxStudents int `yaml:"max_students"`
	// GCPercent is the Go garbage collector's target (GOGC): how far, in
	// percent, the heap may grow past the live data before a collection.
	// Forwarding allocates nothing per packet, so collections are rare at
	// any setting; at 10 a node keeps about 35% less memory per student
	// than at Go's 100, for no measurable CPU, and going lower saves
	// nothing more (docs/performance.md).
	GCPercent int `yaml:"gc_percent"`
	// MetricsClassLabels, when positive, adds series labelled by class to
	// /metrics for at most that many classes of this node, the largest
	// (0: none; a label per class multiplies the series a fleet stores).
	MetricsClassLabels int `yaml:"metrics_class_labels"`

	// NATS lists the URLs of an existing NATS cluster to join; empty runs
	// an embedded NATS server.
	NATS []string `yaml:"nats"`
	// NATSCreds is a NATS credentials file (JWT and nkey seed).
	NATSCreds string `yaml:"nats_creds"`
	// NATSTLSCA is a PEM file of CAs that sign the NATS servers' certificates.
	NATSTLSCA string `yaml:"nats_tls_ca"`
	// NATSTLSCert and NATSTLSKey are a PEM client certificate and its key.
	NATSTLSCert string `yaml:"nats_tls_cert"`
	NATSTLSKey  string `yaml:"nats_tls_key"`

	// NATSListen is the embedded server's client listen address; "" keeps
	// it inside the process (only needed when other processes connect).
	NATSListen string `yaml:"nats_listen"`
	// NATSClusterListen is the embedded server's route listen address; set
	// it (with NATSRoutes) to form one NATS cluster of several nodes.
	NATSClusterListen string `yaml:"nats_cluster_listen"`
	// NATSRoutes are the route URLs of the other nodes' embedded servers.
	NATSRoutes []string `yaml:"nats_routes"`
	// NATSClusterName names the embedded NATS cluster.
	NATSClusterName string `yaml:"nats_cluster_name"`

	// Recording: record, recording_retention, recording_link_ttl (recording.go).
	Recording `yaml:",inline"`
	// Limits: per-client and per-token limits, trusted proxies (limits.go).
	Limits `yaml:",inline"`
	// Connectivity: HTTPS, single-port mode and TURN (turn.go).
	Connectivity `yaml:",inline"`
}

// MaxMetricsClassLabels caps metrics_class_labels: beyond a few hundred
// classes per node, per-class series belong in logs, not in Prometheus.
const MaxMetricsClassLabels = 500

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		HTTP:            ":8080",
		UDPPort:         7882,
		TCPPort:         7881,
		Data:            "./lectern-data",
		Auth:            AuthOpen,
		LogLevel:        "info",
		LogFormat:       LogAuto,
		InviteTTL:       12 * time.Hour,
		ShutdownTimeout: 10 * time.Second,
		NATSClusterName: "lectern",
		GCPercent:       10,
		Recording:       DefaultRecording(),
		Limits:          DefaultLimits(),
		Connectivity:    DefaultConnectivity(),
	}
}

// SecretPath is where the secret file lives.
func (c Config) SecretPath() string {
	if c.SecretFile != "" {
		return c.SecretFile
	}
	return c.Data + "/secret"
}

// Validate checks every field and reports all problems at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...))
	}
	c.validateNetwork(bad)
	c.validateCluster(bad)
	c.validateRecording(bad)
	c.validateLimits(bad)
	c.validateConnectivity(bad)
	if c.Data == "" {
		bad("data: must name a directory")
	}
	if c.Auth != AuthOpen && c.Auth != AuthTokens {
		bad("auth %q: want %q or %q", c.Auth, AuthOpen, AuthTokens)
	}
	if _, err := zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		bad("log_level %q: want trace, debug, info, warn, error or disabled", c.LogLevel)
	}
	if c.LogFormat != LogAuto && c.LogFormat != LogConsole && c.LogFormat != LogJSON {
		bad("log_format %q: want auto, console or json", c.LogFormat)
	}
	if c.InviteTTL <= 0 {
		bad("invite_ttl %v: must be positive", c.InviteTTL)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout %v: must be positive", c.ShutdownTimeout)
	}
	if c.GCPercent < 1 || c.GCPercent > 10000 {
		bad("gc_percent %d: want 1 to 10000", c.GCPercent)
	}
	if c.MetricsClassLabels < 0 || c.MetricsClassLabels > MaxMetricsClassLabels {
		bad("metrics_class_labels %d: want 0 (none) to %d", c.MetricsClassLabels, MaxMetricsClassLabels)
	}
	if c.Secret != "" && len(c.Secret) < auth.MinSecretLen {
		// Never echo the secret itself.
		bad("LECTERN_SECRET: must be at least %d bytes", auth.MinSecretLen)
	}
	return errors.Join(errs...)
}

// validateNetwork checks the listen address, ports and public IP.
func (c Config) validateNetwork(bad func(format string, a ...any)) {
	if err := checkListen(c.HTTP); err != nil {
		bad("http %q: %v", c.HTTP, err)
	}
	if c.UDPPort < 0 || c.UDPPort > 65535 {
		bad("udp_port %d: want 0 (any free port) to 65535", c.UDPPort)
	}
	if c.TCPPort < -1 || c.TCPPort > 65535 {
		bad("tcp_port %d: want -1 (disabled), 0 (any free port) to 65535", c.TCPPort)
	}
	if c.PublicIP != "" {
		if ip := net.ParseIP(c.PublicIP); ip == nil || ip.IsUnspecified() {
			bad("public_ip %q: not a usable IP address", c.PublicIP)
		}
	}
}

// checkListen accepts host:port with an empty host, an IP or a name.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. :8080 or 127.0.0.1:8080")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return errors.New("port must be 0 to 65535")
	}
	return nil
}

// MarshalZerologObject logs the configuration without the secret.
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	e.Str("http", c.HTTP).Int("udp_port", c.UDPPort).Int("tcp_port", c.TCPPort).
		Str("public_ip", c.PublicIP).Str("data", c.Data).Str("auth", c.Auth).
		Str("log_level", c.LogLevel).Str("log_format", c.LogFormat).
		Stringer("invite_ttl", c.InviteTTL).Stringer("shutdown_timeout", c.ShutdownTimeout).
		Bool("secret_from_env", c.Secret != "").Str("secret_file", c.SecretPath()).
		Str("node_id", c.NodeID).Str("public_url", c.PublicURL).Int("max_students", c.MaxStudents).
		Int("gc_percent", c.GCPercent).Int("metrics_class_labels", c.MetricsClassLabels).
		Strs("nats", c.RedactedNATS()).Str("nats_creds", c.NATSCreds).Str("nats_tls_ca", c.NATSTLSCA).
		Str("nats_tls_cert", c.NATSTLSCert).Str("nats_tls_key", c.NATSTLSKey).
		Str("nats_listen", c.NATSListen).Str("nats_cluster_listen", c.NATSClusterListen).
		Strs("nats_routes", c.NATSRoutes).Str("nats_cluster_name", c.NATSClusterName).
		Bool("record", c.Record).Stringer("recording_retention", c.RecordingRetention).
		Stringer("recording_link_ttl", c.RecordingLinkTTL).
		Int("whep_sessions_per_token", c.WHEPPerToken).Int("chat_rate", c.ChatRate).
		Int("chat_burst", c.ChatBurst).Int("class_chat_rate", c.ClassChatRate).
		Stringer("flood_cooldown", c.FloodCooldown).Int("join_rate_invite", c.JoinRateInvite).
		Int("join_rate_ip", c.JoinRateIP).Int("check_rate_ip", c.CheckRateIP).Strs("trusted_proxies", c.TrustedProxies).
		Str("tls_cert", c.TLSCert).Bool("single_port", c.SinglePort).Bool("turn", c.TURN).
		Int("turn_udp_port", c.TURNUDPPort).Int("turn_tcp_port", c.TURNTCPPort).Int("turn_tls_port", c.TURNTLSPort).
		Int("turn_tls_public_port", c.TURNTLSPublicPort).
		Str("turn_host", c.TURNHost).Str("turn_relay_ip", c.TURNRelayIP).Strs("turn_allow", c.TURNAllow).
		Stringer("turn_credential_ttl", c.TURNCredentialTTL).Int("turn_max_allocations", c.TURNMaxAllocations)
}
