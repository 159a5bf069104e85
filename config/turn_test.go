package config

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConnectivityYAML(t *testing.T) {
	t.Parallel()
	got, err := Load([]string{"--config", writeFile(t, "turn: true\nturn_allow: [\"10.20.0.0/16\"]\nturn_tls_cert: /t.pem\nturn_tls_key: /t.key\ntls_cert: /h.pem\ntls_key: /h.key\nsingle_port: true\n")}, nil)
	require.NoError(t, err)
	require.True(t, got.TURN)
	require.True(t, got.SinglePort)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}, got.TURNAllowPrefixes())
	cert, key := got.TURNCert()
	require.Equal(t, "/t.pem /t.key", cert+" "+key)
	got.TURNTLSCert, got.TURNTLSKey = "", ""
	cert, _ = got.TURNCert()
	require.Equal(t, "/h.pem", cert)
}

func TestValidateConnectivity(t *testing.T) {
	t.Parallel()
	for name, edit := range map[string]func(*Config){
		"tls_cert":             func(c *Config) { c.TLSCert = "c.pem" },
		"turn_tls_cert":        func(c *Config) { c.TURNTLSKey = "k.pem" },
		"turn_udp_port":        func(c *Config) { c.TURNUDPPort = 70000 },
		"turn_tcp_port":        func(c *Config) { c.TURNTCPPort = -2 },
		"turn_relay_ip":        func(c *Config) { c.TURNRelayIP = "0.0.0.0" },
		"turn_allow":           func(c *Config) { c.TURNAllow = []string{"10.0.0.0"} },
		"turn_credential_ttl":  func(c *Config) { c.TURNCredentialTTL = time.Second },
		"turn_max_allocations": func(c *Config) { c.TURNMaxAllocations = 0 },
		"turn_tls_public_port": func(c *Config) { c.TURNTLSPublicPort = -1 },
		"the media plane's":    func(c *Config) { c.TURN, c.TURNUDPPort = true, c.UDPPort },
	} {
		c := Default()
		edit(&c)
		require.ErrorContains(t, c.Validate(), name)
	}
}
