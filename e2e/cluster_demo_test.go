package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestClusterDemo runs scripts/cluster-demo: three lectern processes on a
// stock nats-server, a WHIP publisher and WHEP viewers spread over them,
// then SIGKILL of a viewer's node and of the class's origin. The script
// fails (non-zero) unless every viewer plays again after each kill; the
// test also checks that each recovery was reported with its time.
func TestClusterDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../scripts/cluster-demo")
	// SIGTERM lets the script's trap kill the nodes it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	out, err := cmd.CombinedOutput()
	text := string(out)
	require.NoError(t, err, "scripts/cluster-demo:\n%s", text)
	t.Log("\n" + text)

	require.Contains(t, text, "GET /readyz: 200 on a, b and c")
	require.Regexp(t, `viewer 1 on \S+: [1-9]\d* video \+ [1-9]\d* audio packets`, text)
	after := strings.SplitN(text, "== kill -9 node b", 2)
	require.Len(t, after, 2, "the demo did not reach the first kill")
	require.Regexp(t, `viewer 1: playing from \S+, \d+\.\d+ s after the kill`, after[1])
	require.Regexp(t, `publisher: publishing on \S+ again, \d+\.\d+ s after the kill`, after[1])
	origin := strings.SplitN(after[1], "== kill -9 node a", 2)
	require.Len(t, origin, 2, "the demo did not reach the second kill")
	require.Len(t, regexp.MustCompile(`viewer \d: playing from`).FindAllString(origin[1], -1), 2,
		"both viewers play again after the origin died")
}
