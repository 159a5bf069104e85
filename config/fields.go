package config

import (
	"errors"
	"strconv"
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
	return []field{
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
	}
}

type stringValue struct{ p *string }

func (v stringValue) Set(s string) error { *v.p = s; return nil }

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
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
