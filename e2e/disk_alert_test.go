package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"lectern/auth"
	"lectern/config"
)

// TestBrowserConsoleDiskAlert: a node whose recordings live on a small
// file system of their own (a 4 MB tmpfs the test mounts) that fills up
// to 95 % raises "recording disk nearly full" in the operator console in
// Chromium, beside the other alerts, as the alerting rule would from
// lectern_recordings_disk_free_bytes; an operator of one class is not
// shown it; once space is freed it goes.
func TestBrowserConsoleDiskAlert(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	require.Zero(t, os.Geteuid(), "mounting a file system for the recordings needs root")
	data := t.TempDir()
	recs := filepath.Join(data, "recordings")
	require.NoError(t, os.Mkdir(recs, 0o700))
	require.NoError(t, unix.Mount("tmpfs", recs, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=4m,mode=0700"))
	t.Cleanup(func() { require.NoError(t, unix.Unmount(recs, unix.MNT_DETACH)) })
	srv := startServerWith(t, "tokens", func(c *config.Config) { c.Data = data })

	b := newBrowser(t, chromium)
	console := b.open(t, "operator", srv.base+"/operator#token="+operatorToken(t, srv.signer))
	const alertRow = `document.querySelector('[data-testid="alert-row"][data-kind="recording_disk_nearly_full"]')`
	waitFor(t, 15*time.Second, "the console's first view, without the alert", func() (bool, string) {
		calm, err := eval[bool](console, `!!document.querySelector('[data-testid="no-alerts"]')`)
		return err == nil && calm, fmt.Sprintf("no alerts %v err=%v", calm, err)
	})

	fill := filepath.Join(recs, "filler.bin")
	require.NoError(t, os.WriteFile(fill, make([]byte, 3900<<10), 0o600))
	m := scrapeMetrics(t, srv.base)
	free, size := m.samples["lectern_recordings_disk_free_bytes"], m.samples["lectern_recordings_disk_size_bytes"]
	require.Less(t, free/size, 0.1, "the metric the alerting rule reads: %v of %v free", free, size)
	waitFor(t, 15*time.Second, "the disk alert in the console", func() (bool, string) {
		text, err := eval[string](console, `(() => { const r = `+alertRow+`; return r ? r.textContent : ''; })()`)
		return err == nil && strings.Contains(text, "of the recordings' disk free"), fmt.Sprintf("%q err=%v", text, err)
	})
	var view struct {
		Alerts []struct {
			Kind string `json:"kind"`
		} `json:"alerts"`
	}
	getJSON(t, srv.base+"/api/operator", srv.token(t, newRoom(), auth.RoleOperator, "Class ops"), &view)
	require.Empty(t, view.Alerts, "an operator of one class is not told about the node's disk")

	require.NoError(t, os.Remove(fill))
	waitFor(t, 15*time.Second, "the alert to go once space is freed", func() (bool, string) {
		gone, err := eval[bool](console, `!`+alertRow)
		return err == nil && gone, fmt.Sprintf("gone %v err=%v", gone, err)
	})
}
