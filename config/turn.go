package config

import (
	"net"
	"net/netip"
	"time"
)

// Connectivity is how clients behind restrictive networks reach the node:
// HTTPS on the HTTP listener, single-port mode and the embedded TURN
// server (docs/deploy.md). It is inlined in Config.
type Connectivity struct {
	// TLSCert and TLSKey are a PEM certificate and key: with them the
	// HTTP listener serves HTTPS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// SinglePort carries ICE-TCP and TURN over TCP (and TLS) on the HTTP
	// listener too, told apart by each connection's first bytes.
	SinglePort bool `yaml:"single_port"`
	// TURN runs the embedded TURN server.
	TURN bool `yaml:"turn"`
	// TURNUDPPort, TURNTCPPort and TURNTLSPort are its ports (-1: off).
	// TLS needs a certificate: TURNTLSCert, else TLSCert.
	TURNUDPPort int `yaml:"turn_udp_port"`
	TURNTCPPort int `yaml:"turn_tcp_port"`
	TURNTLSPort int `yaml:"turn_tls_port"`
	// TURNTLSPublicPort, when set, is the port of the turns: URL handed
	// out: a TLS-terminating proxy's, which forwards TURN to the node as
	// TCP (docs/deploy.md).
	TURNTLSPublicPort int `yaml:"turn_tls_public_port"`
	// TURNTLSCert and TURNTLSKey are TURN's own certificate; empty: TLSCert.
	TURNTLSCert string `yaml:"turn_tls_cert"`
	TURNTLSKey  string `yaml:"turn_tls_key"`
	// TURNHost is the name or address in the TURN URLs handed out; empty:
	// the public IP, else the host the client reached the HTTP listener at.
	TURNHost string `yaml:"turn_host"`
	// TURNRelayIP is the local address relays use; empty: the media
	// plane's address, or the host's first non-loopback IPv4 address.
	TURNRelayIP string `yaml:"turn_relay_ip"`
	// TURNAllow are ranges relays may reach despite the deny list.
	TURNAllow []string `yaml:"turn_allow"`
	// TURNCredentialTTL bounds the life of the credentials handed out
	// (and the join token's own expiry bounds it too).
	TURNCredentialTTL time.Duration `yaml:"turn_credential_ttl"`
	// TURNMaxAllocations is each participant's allocation limit.
	TURNMaxAllocations int `yaml:"turn_max_allocations"`
}

// DefaultConnectivity is the connectivity part of Default: plain HTTP,
// no single port, no TURN (with the standard ports ready for it).
func DefaultConnectivity() Connectivity {
	return Connectivity{
		TURNUDPPort: 3478, TURNTCPPort: 3478, TURNTLSPort: 5349,
		TURNCredentialTTL: 2 * time.Hour, TURNMaxAllocations: 24,
	}
}

// TURNCert is the certificate TURN over TLS uses; "" when there is none.
func (c Connectivity) TURNCert() (cert, key string) {
	if c.TURNTLSCert != "" {
		return c.TURNTLSCert, c.TURNTLSKey
	}
	return c.TLSCert, c.TLSKey
}

// TURNAllowPrefixes parses TURNAllow (Validate has checked it).
func (c Connectivity) TURNAllowPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TURNAllow {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

func (c *Config) connectivityFields() []field {
	return []field{
		{"tls_cert", "LECTERN_TLS_CERT", "tls-cert", "PEM certificate: the HTTP listener serves HTTPS (with --tls-key)", stringValue{&c.TLSCert}},
		{"tls_key", "LECTERN_TLS_KEY", "tls-key", "PEM key of --tls-cert", stringValue{&c.TLSKey}},
		{"single_port", "LECTERN_SINGLE_PORT", "single-port", "carry ICE-TCP and TURN over TCP/TLS on the HTTP listener too", boolValue{&c.SinglePort}},
		{"turn", "LECTERN_TURN", "turn", "run the embedded TURN server", boolValue{&c.TURN}},
		{"turn_udp_port", "LECTERN_TURN_UDP_PORT", "turn-udp-port", "TURN over UDP port (0: any free port, -1: off)", intValue{&c.TURNUDPPort}},
		{"turn_tcp_port", "LECTERN_TURN_TCP_PORT", "turn-tcp-port", "TURN over TCP port (0: any free port, -1: off)", intValue{&c.TURNTCPPort}},
		{"turn_tls_port", "LECTERN_TURN_TLS_PORT", "turn-tls-port", "TURN over TLS port, used when there is a certificate (0: any free port, -1: off)", intValue{&c.TURNTLSPort}},
		{"turn_tls_public_port", "LECTERN_TURN_TLS_PUBLIC_PORT", "turn-tls-public-port", "port of the turns: URL handed out when a TLS-terminating proxy forwards TURN (0: the node's own)", intValue{&c.TURNTLSPublicPort}},
		{"turn_tls_cert", "LECTERN_TURN_TLS_CERT", "turn-tls-cert", "PEM certificate of TURN over TLS (empty: --tls-cert)", stringValue{&c.TURNTLSCert}},
		{"turn_tls_key", "LECTERN_TURN_TLS_KEY", "turn-tls-key", "PEM key of --turn-tls-cert", stringValue{&c.TURNTLSKey}},
		{"turn_host", "LECTERN_TURN_HOST", "turn-host", "host name in the TURN URLs handed out (empty: public IP, else the host clients reach HTTP at)", stringValue{&c.TURNHost}},
		{"turn_relay_ip", "LECTERN_TURN_RELAY_IP", "turn-relay-ip", "local address of the relays (empty: the media address or the first non-loopback IPv4)", stringValue{&c.TURNRelayIP}},
		{"turn_allow", "LECTERN_TURN_ALLOW", "turn-allow", "comma-separated CIDRs relays may reach despite the deny list", listValue{&c.TURNAllow}},
		{"turn_credential_ttl", "LECTERN_TURN_CREDENTIAL_TTL", "turn-credential-ttl", "life of the TURN credentials handed out (at most the join token's)", durationValue{&c.TURNCredentialTTL}},
		{"turn_max_allocations", "LECTERN_TURN_MAX_ALLOCATIONS", "turn-max-allocations", "TURN allocations one participant may hold", intValue{&c.TURNMaxAllocations}},
	}
}

// validateConnectivity checks the TLS, single-port and TURN settings.
func (c Config) validateConnectivity(bad func(format string, a ...any)) {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls_cert and tls_key: set both or neither")
	}
	if (c.TURNTLSCert == "") != (c.TURNTLSKey == "") {
		bad("turn_tls_cert and turn_tls_key: set both or neither")
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"turn_udp_port", c.TURNUDPPort}, {"turn_tcp_port", c.TURNTCPPort}, {"turn_tls_port", c.TURNTLSPort}} {
		if p.v < -1 || p.v > 65535 {
			bad("%s %d: want -1 (off), 0 (any free port) to 65535", p.name, p.v)
		}
	}
	if c.TURNTLSPublicPort < 0 || c.TURNTLSPublicPort > 65535 {
		bad("turn_tls_public_port %d: want 0 (the node's own) to 65535", c.TURNTLSPublicPort)
	}
	if c.TURN && c.TURNUDPPort > 0 && c.TURNUDPPort == c.UDPPort {
		bad("turn_udp_port %d: the media plane's udp_port already", c.TURNUDPPort)
	}
	if c.TURNRelayIP != "" {
		if ip := net.ParseIP(c.TURNRelayIP); ip == nil || ip.IsUnspecified() {
			bad("turn_relay_ip %q: not a usable IP address", c.TURNRelayIP)
		}
	}
	for _, s := range c.TURNAllow {
		if _, err := netip.ParsePrefix(s); err != nil {
			bad("turn_allow %q: want a CIDR such as 10.20.0.0/16", s)
		}
	}
	if c.TURNCredentialTTL < time.Minute || c.TURNCredentialTTL > 24*time.Hour {
		bad("turn_credential_ttl %v: want 1m to 24h", c.TURNCredentialTTL)
	}
	if c.TURNMaxAllocations < 1 || c.TURNMaxAllocations > 1000 {
		bad("turn_max_allocations %d: want 1 to 1000", c.TURNMaxAllocations)
	}
}
