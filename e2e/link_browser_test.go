package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"lectern/client"
	"lectern/config"
)

// TestBrowserLinkLeavesAddressBar: the class page takes the token out of
// the address bar as it loads (a shared screen or the history shows no
// token), and a reload still joins, as the same participant: for the
// teacher's link and for a student's invite link alike.
func TestBrowserLinkLeavesAddressBar(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServer(t, "open")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	class, err := client.CreateClass(ctx, srv.base, "Link class", "Ms Teacher")
	require.NoError(t, err)

	b := newBrowser(t, chromium)
	teacher := b.open(t, "teacher", srv.base+class.TeacherURL)
	student := b.open(t, "student", srv.base+withQuery(class.StudentURL, "name=Ada"))
	for _, tb := range []*tab{teacher, student} {
		first := tb.waitState(t, 30*time.Second, "joined", func(s pageState) bool { return s.Connected && s.You != nil })
		tb.requireNoToken(t)
		tb.do(t, "reload", chromedp.Reload())
		again := tb.waitState(t, 30*time.Second, "joined after reload", func(s pageState) bool { return s.Connected && s.You != nil })
		require.Equal(t, first.You.ID, again.You.ID, "%s: the same participant after a reload", tb.name)
		tb.requireNoToken(t)
	}
}

// requireNoToken: neither the address nor the history entry holds a token.
func (tb *tab) requireNoToken(t *testing.T) {
	t.Helper()
	href, err := eval[string](tb, `location.href`)
	require.NoError(t, err)
	require.NotContains(t, href, "token=", tb.name)
	require.NotContains(t, href, "invite=", tb.name)
	require.True(t, strings.Contains(href, "/room/"), href)
	hash, err := eval[string](tb, `location.hash`)
	require.NoError(t, err)
	require.NotContains(t, hash, "token", tb.name)
}

// TestBrowserJoinWaitsForTheJoinLimit: when an invite's joins are spent
// (the class is joining all at once), the page says so and joins by
// itself once the server's Retry-After has passed.
func TestBrowserJoinWaitsForTheJoinLimit(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServerWith(t, "open", func(c *config.Config) { c.JoinRateInvite = 4 }) // one every 15 s
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	class, err := client.CreateClass(ctx, srv.base, "Busy class", "Ms Teacher")
	require.NoError(t, err)
	invite := strings.TrimPrefix(class.StudentURL[strings.Index(class.StudentURL, "#"):], "#token=")
	for i := 0; ; i++ {
		_, err := client.JoinInvite(ctx, srv.base, invite, fmt.Sprintf("Student %d", i))
		if err != nil {
			var he *client.HTTPError
			require.ErrorAs(t, err, &he)
			require.Equal(t, http.StatusTooManyRequests, he.Status)
			break
		}
		require.Less(t, i, 40, "the invite's joins never ran out")
	}

	b := newBrowser(t, chromium)
	ada := b.open(t, "ada", srv.base+withQuery(class.StudentURL, "name=Ada"))
	ada.waitScript(t, "told to wait", `(document.querySelector('[data-testid="join-error"]')?.textContent ?? '').includes('Trying again')`)
	ada.waitState(t, 30*time.Second, "joined after the wait", func(s pageState) bool { return s.Connected && s.You != nil })
}
