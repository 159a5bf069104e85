package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lectern.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestDefaultIsValid(t *testing.T) {
	t.Parallel()
	require.NoError(t, Default().Validate())
}

func TestSampleFileIsDefault(t *testing.T) {
	t.Parallel()
	c := Default()
	c.HTTP, c.Data = "changed:1", "changed" // prove the file sets them back
	require.NoError(t, c.LoadFile("../lectern.sample.yaml"))
	require.Equal(t, Default(), c)

	// Every key is documented in the sample, not only the ones that differ.
	b, err := os.ReadFile("../lectern.sample.yaml")
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(b, &m))
	require.Equal(t, yamlKeys(), sortedKeys(m))
}

// TestFieldTableMatchesYAMLTags keeps the hand-written table in step with
// the struct: every yaml tag has a row, every row's key is a yaml tag.
func TestFieldTableMatchesYAMLTags(t *testing.T) {
	t.Parallel()
	b, err := yaml.Marshal(Default())
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(b, &m))
	require.Equal(t, sortedKeys(m), yamlKeys())

	for _, f := range new(Config).fields() {
		if f.key != "" {
			require.Equal(t, "LECTERN_"+strings.ToUpper(f.key), f.env)
			require.Equal(t, strings.ReplaceAll(f.key, "_", "-"), f.flag)
		}
	}
}

func yamlKeys() []string {
	var keys []string
	for _, f := range new(Config).fields() {
		if f.key != "" {
			keys = append(keys, f.key)
		}
	}
	sort.Strings(keys)
	return keys
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "http: \"127.0.0.1:1001\"\nudp_port: 1001\ntcp_port: 1001\ninvite_ttl: 1h\nauth: tokens\n")
	tests := []struct {
		name string
		args []string
		env  []string
		want func(*Config)
	}{
		{"defaults", nil, nil, func(*Config) {}},
		{"yaml over default", []string{"--config", file}, nil, func(c *Config) {
			c.HTTP, c.UDPPort, c.TCPPort, c.InviteTTL, c.Auth = "127.0.0.1:1001", 1001, 1001, time.Hour, AuthTokens
		}},
		{"config path from env", nil, []string{"LECTERN_CONFIG=" + file}, func(c *Config) {
			c.HTTP, c.UDPPort, c.TCPPort, c.InviteTTL, c.Auth = "127.0.0.1:1001", 1001, 1001, time.Hour, AuthTokens
		}},
		{"env over yaml", []string{"--config", file}, []string{"LECTERN_UDP_PORT=2002", "LECTERN_INVITE_TTL=2h", "LECTERN_AUTH=open"}, func(c *Config) {
			c.HTTP, c.UDPPort, c.TCPPort, c.InviteTTL, c.Auth = "127.0.0.1:1001", 2002, 1001, 2*time.Hour, AuthOpen
		}},
		{"flag over env over yaml", []string{"--config", file, "--udp-port", "3003", "-tcp-port=-1"}, []string{"LECTERN_UDP_PORT=2002", "LECTERN_TCP_PORT=2002"}, func(c *Config) {
			c.HTTP, c.UDPPort, c.TCPPort, c.InviteTTL, c.Auth = "127.0.0.1:1001", 3003, -1, time.Hour, AuthTokens
		}},
		{"empty env is unset", nil, []string{"LECTERN_HTTP=", "LECTERN_PUBLIC_IP="}, func(*Config) {}},
		{"every env name", nil, []string{
			"LECTERN_HTTP=127.0.0.1:9", "LECTERN_UDP_PORT=9", "LECTERN_TCP_PORT=8", "LECTERN_PUBLIC_IP=203.0.113.7",
			"LECTERN_DATA=/var/lib/lectern", "LECTERN_AUTH=tokens", "LECTERN_LOG_LEVEL=debug", "LECTERN_LOG_FORMAT=json",
			"LECTERN_INVITE_TTL=5m", "LECTERN_SHUTDOWN_TIMEOUT=3s", "LECTERN_SECRET_FILE=/run/secret",
			"LECTERN_SECRET=" + strings.Repeat("s", 32),
			"LECTERN_NODE_ID=edge-1", "LECTERN_PUBLIC_URL=https://edge-1.example.org", "LECTERN_MAX_STUDENTS=500", "LECTERN_GC_PERCENT=40",
			"LECTERN_NATS=nats://10.0.0.2:4222, tls://10.0.0.3:4222", "LECTERN_NATS_CREDS=/run/nats.creds",
			"LECTERN_NATS_TLS_CA=/run/ca.pem", "LECTERN_NATS_TLS_CERT=/run/c.pem", "LECTERN_NATS_TLS_KEY=/run/k.pem",
			"LECTERN_NATS_CLUSTER_NAME=school",
		}, func(c *Config) {
			*c = Config{HTTP: "127.0.0.1:9", UDPPort: 9, TCPPort: 8, PublicIP: "203.0.113.7", Data: "/var/lib/lectern",
				Auth: AuthTokens, LogLevel: "debug", LogFormat: LogJSON, InviteTTL: 5 * time.Minute,
				ShutdownTimeout: 3 * time.Second, SecretFile: "/run/secret", Secret: strings.Repeat("s", 32),
				NodeID: "edge-1", PublicURL: "https://edge-1.example.org", MaxStudents: 500, GCPercent: 40,
				NATS: []string{"nats://10.0.0.2:4222", "tls://10.0.0.3:4222"}, NATSCreds: "/run/nats.creds",
				NATSTLSCA: "/run/ca.pem", NATSTLSCert: "/run/c.pem", NATSTLSKey: "/run/k.pem", NATSClusterName: "school",
				Limits: DefaultLimits(), Connectivity: DefaultConnectivity()}
		}},
		{"embedded cluster env", nil, []string{"LECTERN_NATS_LISTEN=127.0.0.1:4222",
			"LECTERN_NATS_CLUSTER_LISTEN=10.0.0.5:6222", "LECTERN_NATS_ROUTES=nats-route://10.0.0.6:6222,nats-route://10.0.0.7:6222"},
			func(c *Config) {
				c.NATSListen, c.NATSClusterListen = "127.0.0.1:4222", "10.0.0.5:6222"
				c.NATSRoutes = []string{"nats-route://10.0.0.6:6222", "nats-route://10.0.0.7:6222"}
			}},
		{"every flag", []string{"--http", "[::1]:9", "--udp-port", "9", "--tcp-port", "8", "--public-ip", "2001:db8::1",
			"--data", "d", "--auth", "tokens", "--log-level", "warn", "--log-format", "console",
			"--invite-ttl", "90s", "--shutdown-timeout", "1m", "--secret-file", "f",
			"--node-id", "n_2", "--public-url", "http://10.0.0.5:8080", "--max-students", "7", "--gc-percent", "60",
			"--nats-listen", ":4222", "--nats-cluster-listen", ":6222", "--nats-routes", "nats-route://a:6222,nats://b:6222",
			"--nats-cluster-name", "c1"}, nil, func(c *Config) {
			*c = Config{HTTP: "[::1]:9", UDPPort: 9, TCPPort: 8, PublicIP: "2001:db8::1", Data: "d",
				Auth: AuthTokens, LogLevel: "warn", LogFormat: LogConsole, InviteTTL: 90 * time.Second,
				ShutdownTimeout: time.Minute, SecretFile: "f",
				NodeID: "n_2", PublicURL: "http://10.0.0.5:8080", MaxStudents: 7, GCPercent: 60,
				NATSListen: ":4222", NATSClusterListen: ":6222", NATSRoutes: []string{"nats-route://a:6222", "nats://b:6222"},
				NATSClusterName: "c1", Limits: DefaultLimits(), Connectivity: DefaultConnectivity()}
		}},
		{"connectivity", []string{"--single-port", "--turn", "--turn-tls-port", "-1", "--turn-allow", "10.20.0.0/16, 192.168.7.0/24",
			"--turn-max-allocations", "6"}, []string{"LECTERN_TLS_CERT=/run/c.pem", "LECTERN_TLS_KEY=/run/k.pem",
			"LECTERN_TURN_UDP_PORT=3479", "LECTERN_TURN_HOST=class.example.org", "LECTERN_TURN_CREDENTIAL_TTL=30m",
			"LECTERN_TURN_RELAY_IP=10.0.0.5"}, func(c *Config) {
			c.TLSCert, c.TLSKey, c.SinglePort, c.TURN = "/run/c.pem", "/run/k.pem", true, true
			c.TURNUDPPort, c.TURNTLSPort, c.TURNHost, c.TURNRelayIP = 3479, -1, "class.example.org", "10.0.0.5"
			c.TURNAllow = []string{"10.20.0.0/16", "192.168.7.0/24"}
			c.TURNCredentialTTL, c.TURNMaxAllocations = 30*time.Minute, 6
		}},
		{"external nats flags", []string{"--nats", "nats://h1:4222,nats://h2:4222", "--nats-creds", "u.creds",
			"--nats-tls-ca", "ca", "--nats-tls-cert", "c", "--nats-tls-key", "k"}, nil, func(c *Config) {
			c.NATS = []string{"nats://h1:4222", "nats://h2:4222"}
			c.NATSCreds, c.NATSTLSCA, c.NATSTLSCert, c.NATSTLSKey = "u.creds", "ca", "c", "k"
		}},
		{"yaml lists", []string{"--config", writeFile(t, "nats: [\"nats://h:4222\"]\nnats_tls_ca: ca.pem\n")}, nil, func(c *Config) {
			c.NATS, c.NATSTLSCA = []string{"nats://h:4222"}, "ca.pem"
		}},
		{"flag over yaml list", []string{"--config", writeFile(t, "nats: [\"nats://h:4222\"]\n"), "--nats", "nats://x:1"}, nil, func(c *Config) {
			c.NATS = []string{"nats://x:1"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Load(tt.args, EnvList(tt.env))
			require.NoError(t, err)
			want := Default()
			tt.want(&want)
			require.Equal(t, want, got)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     []string
		yaml    string // written to a file passed with --config when set
		is      error
		message string // must appear in the error
	}{
		{"unknown flag", []string{"--htp", ":1"}, nil, "", ErrUsage, "-htp"},
		{"stray argument", []string{"serve"}, nil, "", ErrUsage, `"serve"`},
		{"no --secret flag", []string{"--secret", "x"}, nil, "", ErrUsage, "-secret"},
		{"flag not a number", []string{"--udp-port", "seven"}, nil, "", ErrUsage, "udp-port"},
		{"flag bad duration", []string{"--invite-ttl", "12"}, nil, "", ErrUsage, "invite-ttl"},
		{"env not a number", nil, []string{"LECTERN_UDP_PORT=x"}, "", ErrInvalid, "LECTERN_UDP_PORT"},
		{"env bad duration", nil, []string{"LECTERN_SHUTDOWN_TIMEOUT=soon"}, "", ErrInvalid, "LECTERN_SHUTDOWN_TIMEOUT"},
		{"unknown yaml key", nil, nil, "http: \":1\"\nudp_prot: 1\n", ErrUnknownKey, `"udp_prot" (line 2)`},
		{"secret in yaml", nil, nil, "secret: abc\n", ErrUnknownKey, "LECTERN_SECRET"},
		{"yaml wrong type", nil, nil, "udp_port: many\n", ErrInvalid, "udp_port"},
		{"yaml duration without unit", nil, nil, "invite_ttl: 30\n", ErrInvalid, "invite_ttl"},
		{"yaml syntax", nil, nil, "http: [\n", ErrFile, "yaml"},
		{"two yaml documents", nil, nil, "http: \":1\"\n---\nhttp: \":2\"\n", ErrFile, "one YAML document"},
		{"missing file", []string{"--config", "/nonexistent/lectern.yaml"}, nil, "", ErrFile, "/nonexistent/lectern.yaml"},
		{"udp port range", []string{"--udp-port", "70000"}, nil, "", ErrInvalid, "udp_port 70000"},
		{"gc percent zero", []string{"--gc-percent", "0"}, nil, "", ErrInvalid, "gc_percent 0"},
		{"udp port negative", []string{"--udp-port", "-1"}, nil, "", ErrInvalid, "udp_port -1"},
		{"tcp port range", []string{"--tcp-port", "-2"}, nil, "", ErrInvalid, "tcp_port -2"},
		{"http no port", []string{"--http", "localhost"}, nil, "", ErrInvalid, "http"},
		{"http bad port", []string{"--http", ":99999"}, nil, "", ErrInvalid, "port must be"},
		{"auth mode", []string{"--auth", "closed"}, nil, "", ErrInvalid, `auth "closed"`},
		{"public ip", []string{"--public-ip", "example.com"}, nil, "", ErrInvalid, "public_ip"},
		{"public ip unspecified", []string{"--public-ip", "0.0.0.0"}, nil, "", ErrInvalid, "public_ip"},
		{"log level", []string{"--log-level", "loud"}, nil, "", ErrInvalid, "log_level"},
		{"log format", []string{"--log-format", "xml"}, nil, "", ErrInvalid, "log_format"},
		{"zero ttl", []string{"--invite-ttl", "0s"}, nil, "", ErrInvalid, "invite_ttl"},
		{"negative shutdown", []string{"--shutdown-timeout", "-1s"}, nil, "", ErrInvalid, "shutdown_timeout"},
		{"empty data", []string{"--data", ""}, nil, "", ErrInvalid, "data"},
		{"short secret", nil, []string{"LECTERN_SECRET=short-secret-value"}, "", ErrInvalid, "at least 32 bytes"},
		{"node id with dot", []string{"--node-id", "web.1"}, nil, "", ErrInvalid, "node_id"},
		{"node id too long", []string{"--node-id", strings.Repeat("n", 65)}, nil, "", ErrInvalid, "node_id"},
		{"public url path", []string{"--public-url", "http://h:1/x"}, nil, "", ErrInvalid, "public_url"},
		{"public url scheme", []string{"--public-url", "ftp://h"}, nil, "", ErrInvalid, "public_url"},
		{"public url not absolute", []string{"--public-url", "h:8080"}, nil, "", ErrInvalid, "public_url"},
		{"negative max students", []string{"--max-students", "-1"}, nil, "", ErrInvalid, "max_students"},
		{"negative class labels", []string{"--metrics-class-labels", "-1"}, nil, "", ErrInvalid, "metrics_class_labels -1"},
		{"too many class labels", nil, []string{"LECTERN_METRICS_CLASS_LABELS=501"}, "", ErrInvalid, "metrics_class_labels 501"},
		{"nats scheme", []string{"--nats", "http://h:4222"}, nil, "", ErrInvalid, "nats"},
		{"nats no port", []string{"--nats", "nats://h"}, nil, "", ErrInvalid, "host:port"},
		{"nats password hidden", []string{"--nats", "nats://u:hunter2@h"}, nil, "", ErrInvalid, "REDACTED"},
		{"cert without key", []string{"--nats", "nats://h:1", "--nats-tls-cert", "c"}, nil, "", ErrInvalid, "nats_tls_key"},
		{"routes with external", []string{"--nats", "nats://h:1", "--nats-routes", "nats-route://a:1", "--nats-cluster-listen", ":1"}, nil, "", ErrInvalid, "not with nats"},
		{"listen with external", []string{"--nats", "nats://h:1", "--nats-listen", ":4222"}, nil, "", ErrInvalid, "not with nats"},
		{"creds without external", []string{"--nats-creds", "x.creds"}, nil, "", ErrInvalid, "only with nats"},
		{"routes without cluster listen", []string{"--nats-routes", "nats-route://a:1"}, nil, "", ErrInvalid, "need nats_cluster_listen"},
		{"route scheme", []string{"--nats-cluster-listen", ":1", "--nats-routes", "tcp://a:1"}, nil, "", ErrInvalid, "nats_routes"},
		{"cluster listen", []string{"--nats-cluster-listen", "6222", "--nats-routes", "nats-route://a:1"}, nil, "", ErrInvalid, "nats_cluster_listen"},
		{"cluster listen without routes", []string{"--nats-cluster-listen", ":6222"}, nil, "", ErrInvalid, "needs nats_routes"},
		{"nats listen", []string{"--nats-listen", "x"}, nil, "", ErrInvalid, "nats_listen"},
		{"cluster name", []string{"--nats-cluster-name", "a b"}, nil, "", ErrInvalid, "nats_cluster_name"},
		{"yaml list wrong type", nil, nil, "nats: 5\n", ErrInvalid, "nats"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if tt.yaml != "" {
				args = append([]string{"--config", writeFile(t, tt.yaml)}, args...)
			}
			_, err := Load(args, EnvList(tt.env))
			require.Error(t, err)
			require.ErrorIs(t, err, tt.is)
			require.Contains(t, err.Error(), tt.message)
		})
	}
}

func TestErrorsNeverShowTheSecret(t *testing.T) {
	t.Parallel()
	_, err := Load(nil, EnvList([]string{"LECTERN_SECRET=hunter2-hunter2", "LECTERN_AUTH=x"}))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	c := Default()
	c.UDPPort, c.Auth = -5, "nobody"
	err := c.Validate()
	require.ErrorContains(t, err, "udp_port")
	require.ErrorContains(t, err, "auth")
}

func TestHelp(t *testing.T) {
	t.Parallel()
	_, err := Load([]string{"--help"}, nil)
	require.True(t, errors.Is(err, flag.ErrHelp))
	var b strings.Builder
	Usage(&b)
	for _, want := range []string{"-udp-port", "LECTERN_UDP_PORT", "7882", "-config", "LECTERN_SECRET"} {
		require.Contains(t, b.String(), want)
	}
}

func TestEmptyYAMLSetsNothing(t *testing.T) {
	t.Parallel()
	got, err := Load([]string{"--config", writeFile(t, "# nothing here\n")}, nil)
	require.NoError(t, err)
	require.Equal(t, Default(), got)
}

func TestSecretPath(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Data = "/srv/lectern"
	require.Equal(t, "/srv/lectern/secret", c.SecretPath())
	c.SecretFile = "/run/keys/lectern"
	require.Equal(t, "/run/keys/lectern", c.SecretPath())
}

func TestErrorsNeverShowNATSPasswords(t *testing.T) {
	t.Parallel()
	_, err := Load([]string{"--nats", "nats://user:hunter2@h,nats://tok3n@h2"}, nil)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
	require.NotContains(t, err.Error(), "tok3n")
	c := Default()
	c.NATS = []string{"nats://user:hunter2@h:4222", "nats://h:4222"}
	require.Equal(t, []string{"nats://REDACTED@h:4222", "nats://h:4222"}, c.RedactedNATS())
}

func TestDeriveNodeID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		port int
		want string
	}{
		{"web-3", 8080, "web-3-8080"},
		{"web3.example.org", 8080, "web3-example-org-8080"},
		{"", 80, "lectern-80"},
		{"..", 80, "lectern-80"},
		{"héte", 1, "h-te-1"},
		{strings.Repeat("a", 100), 65535, strings.Repeat("a", 58) + "-65535"},
	}
	for _, tt := range tests {
		got := DeriveNodeID(tt.host, tt.port)
		require.Equal(t, tt.want, got, tt.host)
		require.True(t, ValidNodeID(got), got)
	}
}

func TestEmptyYAMLListIsDefault(t *testing.T) {
	t.Parallel()
	got, err := Load([]string{"--config", writeFile(t, "nats: []\nnats_routes: []\n")}, nil)
	require.NoError(t, err)
	require.Equal(t, Default(), got)
	require.False(t, got.ExternalNATS())
}
