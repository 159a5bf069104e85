package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"lectern/client"
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
