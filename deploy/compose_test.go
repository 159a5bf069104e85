package deploy

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image           string            `yaml:"image"`
	Build           *composeBuild     `yaml:"build"`
	Command         []string          `yaml:"command"`
	NetworkMode     string            `yaml:"network_mode"`
	Environment     map[string]string `yaml:"environment"`
	Ports           []string          `yaml:"ports"`
	Volumes         []string          `yaml:"volumes"`
	DependsOn       []string          `yaml:"depends_on"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-?])([^}]*))?\}`)

// interpolate does compose's ${VAR}, ${VAR:-default} and ${VAR:?error}
// with vars as the shell's environment; a required variable left unset
// fails the test.
func interpolate(t *testing.T, src string, vars map[string]string) string {
	t.Helper()
	return composeVar.ReplaceAllStringFunc(src, func(m string) string {
		g := composeVar.FindStringSubmatch(m)
		if v := vars[g[1]]; v != "" {
			return v
		}
		switch g[2] {
		case "-":
			return g[3]
		case "?":
			t.Fatalf("compose needs %s: %s", g[1], g[3])
		}
		return ""
	})
}

func readCompose(t *testing.T, vars map[string]string) composeFile {
	t.Helper()
	src, err := os.ReadFile("compose/compose.yaml")
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal([]byte(interpolate(t, string(src), vars)), &c))
	return c
}

// natsOptions parses a NATS server configuration with nats-server's own
// parser, as the server would read it with env in its environment.
func natsOptions(t *testing.T, conf string, env map[string]string) *server.Options {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))
	opts, err := server.ProcessConfigFile(path)
	require.NoError(t, err)
	return opts
}

// TestComposeNATSCluster checks the three NATS servers: one cluster with
// JetStream on each, every server routed to every service of the file,
// its store on a volume of its own.
func TestComposeNATSCluster(t *testing.T) {
	c := readCompose(t, map[string]string{"LECTERN_SECRET": testSecret})
	conf, err := os.ReadFile("compose/nats.conf")
	require.NoError(t, err)
	names := natsServices(c)
	require.Len(t, names, 3, "three NATS servers: JetStream's R3 needs a quorum of two")
	volumes := map[string]bool{}
	for _, name := range names {
		svc := c.Services[name]
		require.Equal(t, []string{"-c", "/etc/nats/nats.conf"}, svc.Command)
		require.Contains(t, svc.Volumes, "./nats.conf:/etc/nats/nats.conf:ro")
		opts := natsOptions(t, string(conf), svc.Environment)
		require.Equal(t, name, opts.ServerName)
		require.True(t, opts.JetStream)
		require.Equal(t, "lectern-nats", opts.Cluster.Name)
		require.Equal(t, 6222, opts.Cluster.Port)
		var routes []string
		for _, r := range opts.Routes {
			require.Equal(t, "6222", r.Port())
			routes = append(routes, r.Hostname())
		}
		require.ElementsMatch(t, names, routes)
		store := ""
		for _, v := range svc.Volumes {
			if vol, mnt, _ := strings.Cut(v, ":"); mnt == opts.StoreDir {
				store = vol
			}
		}
		require.NotEmpty(t, store, "%s: JetStream's store_dir %s on a volume", name, opts.StoreDir)
		require.Contains(t, c.Volumes, store)
		require.False(t, volumes[store], "%s shares its store", name)
		volumes[store] = true
	}
}

func natsServices(c composeFile) []string {
	var out []string
	for name, svc := range c.Services {
		if strings.HasPrefix(svc.Image, "nats:") {
			out = append(out, name)
		}
	}
	return out
}

// TestComposeLecternNodes loads each node's configuration from its
// environment, as the node will, and checks that the three form one
// service: the same secret, their own ids, ports and data, the NATS URLs
// of the three servers' published ports, and a public URL on the HTTP
// port each node listens on.
func TestComposeLecternNodes(t *testing.T) {
	c := readCompose(t, map[string]string{"LECTERN_SECRET": testSecret, "LECTERN_HOST": "192.0.2.10"})
	published := map[string]bool{}
	for _, name := range natsServices(c) {
		for _, p := range c.Services[name].Ports {
			parts := strings.Split(p, ":")
			require.Equal(t, "4222", parts[len(parts)-1])
			published[strings.Join(parts[:len(parts)-1], ":")] = true
		}
	}
	seen := map[string]bool{}
	nodes := 0
	for name, svc := range c.Services {
		if svc.Build == nil {
			continue
		}
		nodes++
		require.Equal(t, "deploy/Dockerfile", svc.Build.Dockerfile)
		require.Equal(t, "host", svc.NetworkMode, "%s: media needs the host's network", name)
		cfg := loadEnv(t, withImageEnv(t, svc.Environment))
		require.Equal(t, name, cfg.NodeID)
		require.Equal(t, testSecret, cfg.Secret)
		require.Equal(t, "192.0.2.10", cfg.PublicIP)
		require.Len(t, cfg.NATS, 3)
		for _, u := range cfg.NATS {
			pu, err := url.Parse(u)
			require.NoError(t, err)
			require.True(t, published[pu.Host], "%s: %s is no published NATS port", name, u)
		}
		_, port, _ := strings.Cut(cfg.HTTP, ":")
		require.Equal(t, "http://192.0.2.10:"+port, cfg.PublicURL)
		for _, p := range []string{"tcp " + port, "udp " + strconv.Itoa(cfg.UDPPort), "tcp " + strconv.Itoa(cfg.TCPPort)} {
			require.False(t, seen[p], "%s: port %s taken by another node on the host", name, p)
			seen[p] = true
		}
		require.Len(t, svc.Volumes, 1)
		vol, mnt, _ := strings.Cut(svc.Volumes[0], ":")
		require.Equal(t, cfg.Data, mnt)
		require.False(t, seen["volume "+vol])
		seen["volume "+vol] = true
		grace, err := time.ParseDuration(svc.StopGracePeriod)
		require.NoError(t, err)
		require.Greater(t, grace, cfg.ShutdownTimeout, "%s: killed before its graceful stop ends", name)
		require.ElementsMatch(t, natsServices(c), svc.DependsOn)
	}
	require.Equal(t, 3, nodes)
}
