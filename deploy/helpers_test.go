package deploy

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"lectern/config"
)

// testSecret stands in for LECTERN_SECRET where a file takes it from
// the operator's environment.
const testSecret = "0123456789abcdef0123456789abcdef0123456789abcdef"

// loadEnv loads a node's configuration from env alone, as `lectern serve`
// would with no flags, and fails on a variable Lectern does not know:
// a misspelt LECTERN_* name would silently leave its setting at the
// default.
func loadEnv(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	known := knownEnv()
	var list []string
	for k, v := range env {
		if strings.HasPrefix(k, "LECTERN_") {
			require.True(t, known[k], "%s is no Lectern setting", k)
		}
		list = append(list, k+"="+v)
	}
	cfg, err := config.Load(nil, config.EnvList(list))
	require.NoError(t, err, "environment %v", env)
	return cfg
}

// knownEnv is every LECTERN_* variable, read from `lectern serve --help`'s
// own text (config.Usage), so the list cannot drift from the table.
func knownEnv() map[string]bool {
	var b strings.Builder
	config.Usage(&b)
	known := map[string]bool{config.EnvConfig: true}
	for _, w := range strings.FieldsFunc(b.String(), func(r rune) bool {
		return !(r == '_' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		if strings.HasPrefix(w, "LECTERN_") {
			known[w] = true
		}
	}
	return known
}

// tool finds a command the tests run, from the Debian package pkg; the
// test fails, rather than skips, without it: scripts/test installs it.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	require.NoError(t, err, "%s must be installed (apt-get install %s)", name, pkg)
	return p
}

// withImageEnv is env over the image's own ENV, as a container sees it.
func withImageEnv(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	out := imageEnv(t)
	for k, v := range env {
		out[k] = v
	}
	return out
}
