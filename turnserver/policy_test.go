package turnserver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDenied(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ip     string
		denied bool
	}{
		{"0.0.0.0", true}, {"0.1.2.3", true},
		{"10.0.0.1", true}, {"10.255.255.255", true},
		{"100.64.0.1", true}, {"100.127.255.254", true}, {"100.128.0.1", false},
		{"127.0.0.1", true}, {"127.1.2.3", true},
		{"169.254.169.254", true}, {"169.254.0.1", true},
		{"172.16.0.1", true}, {"172.31.255.254", true}, {"172.32.0.1", false},
		{"192.0.0.170", true}, {"192.0.2.1", true}, {"192.88.99.1", true},
		{"192.168.1.1", true},
		{"198.18.0.1", true}, {"198.19.255.254", true}, {"198.20.0.1", false},
		{"198.51.100.7", true}, {"203.0.113.9", true},
		{"224.0.0.251", true}, {"239.255.255.250", true},
		{"240.0.0.1", true}, {"255.255.255.255", true},
		{"8.8.8.8", false}, {"192.0.43.10", false}, {"1.1.1.1", false},
		{"::", true}, {"::1", true}, {"::127.0.0.1", true},
		{"::ffff:0:a00:1", true}, // IPv4-translated 10.0.0.1
		{"64:ff9b::a9fe:a9fe", true}, {"64:ff9b:1::1", true},
		{"100::1", true}, {"2001::1", true}, {"2001:db8::1", true},
		{"2002:a00:1::1", true}, {"3fff::1", true}, {"5f00::1", true},
		{"fc00::1", true}, {"fd12:3456::1", true},
		{"fe80::1", true}, {"febf::1", true}, {"fec0::1", true},
		{"ff02::1", true}, {"ff0e::1", true},
		{"2606:4700::1111", false}, {"2a00:1450::1", false},
	}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		require.Equal(t, c.denied, Denied(ip), c.ip)
		if ip.Is4() {
			// CVE-2020-26262: the IPv4-mapped IPv6 form is the same address.
			mapped := netip.AddrFrom16(ip.As16())
			require.True(t, mapped.Is4In6())
			require.Equal(t, c.denied, Denied(mapped), mapped.String())
		}
	}
	// Every range of the table has a case.
	for _, p := range deniedPrefixes {
		covered := false
		for _, c := range cases {
			covered = covered || (c.denied && p.Contains(netip.MustParseAddr(c.ip)))
		}
		require.True(t, covered, "no case in %v", p)
	}
	require.True(t, Denied(netip.Addr{}))
}

func TestPolicyPermit(t *testing.T) {
	t.Parallel()
	p := newPolicy([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.3")},
		[]int{7882}, []netip.Prefix{netip.MustParsePrefix("192.168.50.0/24")})
	for ip, want := range map[string]bool{
		"127.0.0.1": true, "::ffff:127.0.0.1": true, "127.0.0.2": false,
		"10.1.2.3": true, "10.1.2.4": false, "::ffff:10.1.2.4": false,
		"192.168.50.9": true, "::ffff:192.168.50.9": true, "192.168.51.9": false,
		"169.254.169.254": false, "::ffff:169.254.169.254": false, "8.8.4.4": true,
	} {
		require.Equal(t, want, p.permissionHandler(nil, net.ParseIP(ip)), ip)
	}
	// On the node's own addresses, only its media ports.
	require.True(t, p.reach(netip.MustParseAddrPort("127.0.0.1:7882")))
	require.True(t, p.reach(netip.MustParseAddrPort("[::ffff:127.0.0.1]:7882")))
	require.False(t, p.reach(netip.MustParseAddrPort("127.0.0.1:4222")))
	require.False(t, p.reach(netip.MustParseAddrPort("10.1.2.3:8080")))
	require.True(t, p.reach(netip.MustParseAddrPort("192.168.50.9:9")))
	require.False(t, p.reach(netip.MustParseAddrPort("192.168.1.1:7882")))
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	// The REST-API form coturn checks: expiry:participant, HMAC-SHA1 in base64.
	user, pass := Credentials([]byte("north"), "p:1", mustUnix(1700000000))
	require.Equal(t, "1700000000:p:1", user)
	require.Equal(t, "8Tm7VgXKv4PRXW1ef4c3cmAFBzQ=", pass)
	pid, ok := parseUsername(user, mustUnix(1699999999))
	require.True(t, ok)
	require.Equal(t, "p:1", pid)
	_, ok = parseUsername(user, mustUnix(1700000001))
	require.False(t, ok)
}

func mustUnix(sec int64) time.Time { return time.Unix(sec, 0) }
