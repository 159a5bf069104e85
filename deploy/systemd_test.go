package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const unitPath = "systemd/lectern.service"

// unit is a systemd unit file: section → key → values in order.
type unit map[string]map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "bad line %q", line)
			require.NotEmpty(t, section, "key outside a section: %q", line)
			u[section][k] = append(u[section][k], v)
		}
	}
	require.NoError(t, sc.Err())
	return u
}

func (u unit) last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit, with
// ExecStart pointing at a lectern built as the Dockerfile builds it (the
// one change), and requires it silent: verify exits 0 even for an unknown
// key, but says so.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := tool(t, "systemd-analyze", "systemd")
	u := readUnit(t, unitPath)
	exec0 := strings.Fields(u.last("Service", "ExecStart"))
	require.NotEmpty(t, exec0)
	require.Equal(t, "/usr/local/bin/lectern", exec0[0])
	require.Equal(t, []string{"serve"}, exec0[1:])

	src, err := os.ReadFile(unitPath)
	require.NoError(t, err)
	bin := lecternBinary(t)
	src = bytes.ReplaceAll(src, []byte("ExecStart=/usr/local/bin/lectern"), []byte("ExecStart="+bin))
	dir := t.TempDir()
	path := filepath.Join(dir, "lectern.service")
	require.NoError(t, os.WriteFile(path, src, 0o644))

	var stderr bytes.Buffer
	cmd := exec.Command(analyze, "verify", "--man=no", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s%s", out, stderr.String())
	require.Empty(t, strings.TrimSpace(stderr.String()+string(out)), "systemd-analyze verify complains")

	// The exposure score systemd computes from the sandboxing settings
	// (0 is a sealed service, 10 an unprotected one).
	out, err = exec.Command(analyze, "security", "--offline=yes", "--no-pager", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	m := regexp.MustCompile(`Overall exposure level for lectern\.service: ([0-9.]+)`).FindSubmatch(out)
	require.NotNil(t, m, "%s", out)
	score, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	require.LessOrEqual(t, score, 2.0, "exposure %v:\n%s", score, out)
}

// TestSystemdUnitSettings checks what verify cannot: the environment is a
// valid configuration whose data directory is the unit's StateDirectory,
// the process runs unprivileged, and systemd waits longer than Lectern's
// own graceful stop before killing it.
func TestSystemdUnitSettings(t *testing.T) {
	u := readUnit(t, unitPath)
	svc := u["Service"]
	env := map[string]string{"LECTERN_SECRET": testSecret}
	for _, e := range svc["Environment"] {
		for _, w := range shellWords(t, e) {
			k, v, ok := strings.Cut(w, "=")
			require.True(t, ok, "Environment=%s", e)
			env[k] = v
		}
	}
	cfg := loadEnv(t, env)
	require.Equal(t, "/var/lib/"+u.last("Service", "StateDirectory"), cfg.Data)
	require.Equal(t, "json", cfg.LogFormat, "the journal gets one JSON object per line")

	for _, k := range []string{"DynamicUser", "NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"} {
		require.Equal(t, "yes", u.last("Service", k), k)
	}
	require.Equal(t, "strict", u.last("Service", "ProtectSystem"))
	require.Empty(t, u.last("Service", "CapabilityBoundingSet"))
	require.Equal(t, "SIGTERM", u.last("Service", "KillSignal"), "lectern stops gracefully on SIGTERM")

	stop, err := time.ParseDuration(u.last("Service", "TimeoutStopSec"))
	require.NoError(t, err)
	require.Greater(t, stop, cfg.ShutdownTimeout)
	nofile, err := strconv.Atoi(u.last("Service", "LimitNOFILE"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, nofile, 65536, "a socket per student")
	require.Equal(t, []string{"multi-user.target"}, u["Install"]["WantedBy"])
}
