package deploy

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAlertRules checks the alerting rules with Prometheus's own tool:
// they parse and their PromQL is valid (check rules), and each alert
// fires for the unhealthy node of alerts_test.yml, with its labels and
// text, and for no other node or time (test rules). That every metric
// they use is exported by a running node is e2e's
// TestDashboardAndAlertsUseExportedMetrics.
func TestAlertRules(t *testing.T) {
	bin := tool(t, "promtool", "prometheus")
	out, err := exec.Command(bin, "check", "rules", "prometheus/alerts.yml").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "SUCCESS")
	cmd := exec.Command(bin, "test", "rules", "alerts_test.yml")
	cmd.Dir = "prometheus"
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.True(t, strings.Contains(string(out), "SUCCESS"), "%s", out)
}
