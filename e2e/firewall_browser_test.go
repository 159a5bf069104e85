package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

// TestBrowserBehindFirewalls: a Chromium student in a network namespace
// whose firewall (nftables) blocks what school networks block plays the
// teacher's video, and the teacher is told the path it took.
func TestBrowserBehindFirewalls(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	for _, c := range []struct {
		name     string
		single   bool
		firewall func(ns *netns, srv *server) string
		want     []string // the paths the firewall leaves: ICE-TCP or TURN over TCP, or TLS
	}{
		{"udp blocked", false, func(*netns, *server) string {
			return "table inet lectern {\n chain out {\n type filter hook output priority 0; policy accept;\n meta l4proto udp drop\n }\n}\n"
		}, []string{"prflx/tcp", "relay/tcp"}},
		{"only tcp to the single port", true, func(ns *netns, srv *server) string {
			return onlyTCPTo(ns, srv.app.Addr().Port)
		}, []string{"prflx/tcp", "relay/tcp"}},
		{"only the pages and turn over tls", false, func(ns *netns, srv *server) string {
			return onlyTCPTo(ns, srv.app.Addr().Port, port(srv.app.TURN().Addrs().TLS.String()))
		}, []string{"relay/tls"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := newNetns(t)
			srv := ns.turnNode(t, c.single)
			ns.firewall(t, c.firewall(ns, srv))
			room := newRoom()
			teacher := srv.dial(t, srv.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
			publishClip(t, teacher, clipIVF, clipOgg)
			tok := srv.token(t, room, auth.RoleStudent, "Sam")
			claims, err := srv.signer.Verify(tok)
			require.NoError(t, err)

			b := ns.browserIn(t, chromium)
			st := b.open(t, "student", srv.base+"/room/"+room+"#token="+tok)
			st.waitVideoPlaying(t)
			var got string
			waitFor(t, 20*time.Second, "the student's path", func() (bool, string) {
				got = teacher.Connections()[claims.Participant]
				return slices.Contains(c.want, got), got
			})
			t.Logf("%s: the student connected over %s (HTTP port %s)", c.name, got, strconv.Itoa(srv.app.Addr().Port))
		})
	}
}

// onlyTCPTo is a firewall that lets out nothing but TCP to the node's ports.
func onlyTCPTo(ns *netns, ports ...int) string {
	var b strings.Builder
	b.WriteString("table inet lectern {\n chain out {\n type filter hook output priority 0; policy drop;\n oif lo accept\n")
	for _, p := range ports {
		fmt.Fprintf(&b, " ip daddr %s tcp dport %d accept\n", ns.host, p)
	}
	b.WriteString(" }\n}\n")
	return b.String()
}
