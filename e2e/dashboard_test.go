package e2e

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// The Grafana dashboard and the alerting rules shipped in deploy/.
const (
	dashboardFile = "../deploy/grafana/lectern.json"
	alertsFile    = "../deploy/prometheus/alerts.yml"
)

// promQLWords are the words of PromQL that are no metric: functions,
// aggregations, operators and modifiers.
var promQLWords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true,
}

var (
	promQLStrings = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promQLBraces  = regexp.MustCompile(`\{[^{}]*\}|\[[^\[\]]*\]`)
	promQLGroups  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promQLIdent   = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	labelValues   = regexp.MustCompile(`label_values\(\s*([^,()]+)\s*,[^()]*\)`)
)

// promQLMetrics returns the metric names an expression reads: what is
// left once strings, label matchers, ranges and grouping labels are
// removed, less PromQL's own words and the functions (a word followed by
// a parenthesis). Grafana's label_values(metric, label) counts as metric.
func promQLMetrics(expr string) []string {
	expr = labelValues.ReplaceAllString(expr, "$1")
	expr = promQLStrings.ReplaceAllString(expr, `""`)
	for prev := ""; prev != expr; {
		prev = expr
		expr = promQLBraces.ReplaceAllString(expr, " ")
	}
	expr = promQLGroups.ReplaceAllString(expr, " ")
	var out []string
	for _, loc := range promQLIdent.FindAllStringIndex(expr, -1) {
		word := expr[loc[0]:loc[1]]
		rest := strings.TrimLeft(expr[loc[1]:], " \t\n")
		if promQLWords[strings.ToLower(word)] || strings.HasPrefix(rest, "(") {
			continue
		}
		if loc[0] > 0 && (expr[loc[0]-1] >= '0' && expr[loc[0]-1] <= '9' || expr[loc[0]-1] == '.') {
			continue // a unit or exponent of a number: 5m, 1e9
		}
		out = append(out, word)
	}
	return out
}

func TestPromQLMetrics(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"a_bucket"},
		promQLMetrics(`histogram_quantile(0.95, sum by (le, kind) (rate(a_bucket{instance=~"$instance"}[5m])))`))
	require.Equal(t, []string{"x", "y"}, promQLMetrics(`sum without (role) (x{role="student"}) / on(instance) (y > 0) > 0.9`))
	require.Equal(t, []string{"up"}, promQLMetrics(`label_values(up, instance)`))
	require.Equal(t, []string{"m"}, promQLMetrics(`m < 5e9 or vector(0)`))
}

// dashboardExprs walks a Grafana dashboard for every PromQL expression:
// its panels' (and collapsed rows' panels') targets and its query
// variables.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d struct {
		Title      string            `json:"title"`
		UID        string            `json:"uid"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(b, &d))
	require.NotEmpty(t, d.UID)
	exprs := map[string]string{}
	var rows []string
	ids := map[int]bool{}
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p struct {
				ID      int               `json:"id"`
				Type    string            `json:"type"`
				Title   string            `json:"title"`
				Panels  []json.RawMessage `json:"panels"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			}
			require.NoError(t, json.Unmarshal(r, &p))
			require.False(t, ids[p.ID], "panel id %d twice", p.ID)
			ids[p.ID] = true
			require.NotEmpty(t, p.Title, "panel %d has no title", p.ID)
			if p.Type == "row" {
				rows = append(rows, p.Title)
				walk(p.Panels)
				continue
			}
			require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
			for i, tg := range p.Targets {
				require.NotEmpty(t, tg.Expr, "panel %q target %d", p.Title, i)
				exprs["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
			}
		}
	}
	walk(d.Panels)
	require.Equal(t, []string{"Fleet", "Node", "Class quality"}, rows)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &q) != nil {
			require.NoError(t, json.Unmarshal(v.Query, &q.Query))
		}
		exprs["variable "+v.Name] = q.Query
	}
	return exprs
}

// alertExprs reads every alerting rule's expression.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	require.NoError(t, err)
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f))
	exprs := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert)
			exprs["alert "+r.Alert] = r.Expr
		}
	}
	require.NotEmpty(t, exprs)
	return exprs
}

// TestDashboardAndAlertsUseExportedMetrics starts a node with a class, a
// pion teacher publishing and a pion student watching, and checks that
// every metric the Grafana dashboard and the alerting rules query is on
// the node's /metrics: a renamed or removed metric fails here, not on an
// operator's empty panel or silent alert.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "tokens")
	liveClass(t, srv, "Ada")

	var m scrape
	waitFor(t, 30*time.Second, "the student's receiver reports", func() (bool, string) {
		m = scrapeMetrics(t, srv.base)
		n := m.samples[`lectern_reception_rtt_seconds_count{kind="video"}`]
		return n > 0, "no video round trip observed yet"
	})
	exported := map[string]bool{}
	for series := range m.samples {
		name, _, _ := strings.Cut(series, "{")
		exported[name] = true
	}
	exprs := dashboardExprs(t)
	for k, v := range alertExprs(t) {
		exprs[k] = v
	}
	used := map[string]bool{}
	for where, expr := range exprs {
		names := promQLMetrics(expr)
		require.NotEmpty(t, names, "%s: no metric in %q", where, expr)
		for _, name := range names {
			require.True(t, exported[name], "%s uses %s, which the node does not export (%q)", where, name, expr)
			used[name] = true
		}
	}
	var list []string
	for n := range used {
		list = append(list, n)
	}
	sort.Strings(list)
	t.Logf("%d queries use %d metrics, all exported: %s", len(exprs), len(list), strings.Join(list, " "))
}
