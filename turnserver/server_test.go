package turnserver

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"
	"github.com/stretchr/testify/require"
)

func TestAllocatesWithGoodCredentials(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	for _, transport := range []string{"udp", "tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			user, pass := Credentials(testSecret, "student-"+transport, time.Now().Add(time.Minute))
			cl := dialClient(t, ts, transport, user, pass)
			relay, err := cl.Allocate()
			require.NoError(t, err)
			defer relay.Close()
			require.Equal(t, "127.0.0.1", relay.LocalAddr().(*net.UDPAddr).IP.String())

			// Data relayed to the node's media port arrives there, from the relay address.
			media := ts.media.LocalAddr().(*net.UDPAddr)
			_, err = relay.WriteTo([]byte("hello "+transport), media)
			require.NoError(t, err)
			buf := make([]byte, 64)
			require.NoError(t, ts.media.SetReadDeadline(time.Now().Add(5*time.Second)))
			n, from, err := ts.media.ReadFrom(buf)
			require.NoError(t, err)
			require.Equal(t, "hello "+transport, string(buf[:n]))
			require.Equal(t, relay.LocalAddr().String(), from.String())
		})
	}
}

func TestRefusesExpiredAndWrongCredentials(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	expiredUser, expiredPass := Credentials(testSecret, "s1", time.Now().Add(-time.Second))
	goodUser, _ := Credentials(testSecret, "s1", time.Now().Add(time.Minute))
	_, otherPass := Credentials([]byte("another secret of thirty-two byte"), "s1", time.Now().Add(time.Minute))
	cases := []struct{ name, user, pass string }{
		{"expired", expiredUser, expiredPass},
		{"wrong password", goodUser, "bm90IHRoZSBwYXNzd29yZA=="},
		{"other secret", goodUser, otherPass},
		{"no expiry", "s1", "x"},
		{"no participant", strings.Split(goodUser, ":")[0] + ":", "x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := dialClient(t, ts, "udp", c.user, c.pass)
			_, err := cl.Allocate()
			require.Error(t, err)
		})
	}
	require.Zero(t, ts.Stats().Allocations)
	require.NotZero(t, ts.Stats().AuthFailed)
}

func TestAllocationLimitPerParticipant(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.MaxAllocations = 2 })
	user, pass := Credentials(testSecret, "s1", time.Now().Add(time.Minute))
	var relays []net.PacketConn
	for range 2 {
		r, err := dialClient(t, ts, "udp", user, pass).Allocate()
		require.NoError(t, err)
		relays = append(relays, r)
	}
	_, err := dialClient(t, ts, "udp", user, pass).Allocate()
	require.ErrorContains(t, err, "486")
	require.EqualValues(t, 1, ts.Stats().RefusedQuota)

	// Fresh credentials of the same participant share its limit.
	user2, pass2 := Credentials(testSecret, "s1", time.Now().Add(2*time.Minute))
	_, err = dialClient(t, ts, "tcp", user2, pass2).Allocate()
	require.ErrorContains(t, err, "486")

	// Another participant has a limit of its own.
	other, otherPass := Credentials(testSecret, "s2", time.Now().Add(time.Minute))
	r, err := dialClient(t, ts, "udp", other, otherPass).Allocate()
	require.NoError(t, err)
	defer r.Close()

	// A released allocation makes room again.
	require.NoError(t, relays[0].Close())
	require.Eventually(t, func() bool {
		r, err := dialClient(t, ts, "udp", user, pass).Allocate()
		if err == nil {
			_ = r.Close()
		}
		return err == nil
	}, 5*time.Second, 50*time.Millisecond)
	_ = relays[1].Close()
}

// TestRelayReachesOnlyMediaPortsOfTheNode: permissions are per IP
// address, but on the node's own address only its media port is reached.
func TestRelayReachesOnlyMediaPortsOfTheNode(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer other.Close()
	user, pass := Credentials(testSecret, "s1", time.Now().Add(time.Minute))
	relay, err := dialClient(t, ts, "udp", user, pass).Allocate()
	require.NoError(t, err)
	defer relay.Close()

	_, err = relay.WriteTo([]byte("to NATS"), other.LocalAddr())
	require.NoError(t, err)
	_, err = relay.WriteTo([]byte("to media"), ts.media.LocalAddr())
	require.NoError(t, err)
	buf := make([]byte, 64)
	require.NoError(t, ts.media.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, _, err := ts.media.ReadFrom(buf)
	require.NoError(t, err)
	require.Equal(t, "to media", string(buf[:n]))
	// The first datagram was sent before the second, which has arrived.
	require.NoError(t, other.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
	_, _, err = other.ReadFrom(buf)
	require.ErrorIs(t, err, errTimeout(err))
}

func errTimeout(err error) error {
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return err
	}
	return nil
}

// TestCreatePermissionDenyList tries a peer in every denied range over a
// real client: each is refused (403), while the node's own media address,
// an operator-allowed range and a public address are granted.
func TestCreatePermissionDenyList(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) {
		c.RelayIP6 = net.IPv6loopback
		c.Own = append(c.Own, netip.MustParseAddr("::1"))
		c.Allow = []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
	})
	user, pass := Credentials(testSecret, "s1", time.Now().Add(time.Minute))
	v4 := dialClient(t, ts, "udp", user, pass)
	v6 := dialClientFamily(t, ts, user, pass, turn.RequestedAddressFamilyIPv6)
	for _, cl := range []*turn.Client{v4, v6} {
		relay, err := cl.Allocate()
		require.NoError(t, err)
		defer relay.Close()
	}
	refused := 0
	for _, p := range deniedPrefixes {
		ip := sampleIn(p)
		cl := v6
		if ip.Unmap().Is4() {
			cl = v4 // an IPv4 peer, or an IPv6 form of one, which travels as IPv4
		}
		err := cl.CreatePermission(&net.UDPAddr{IP: ip.AsSlice(), Port: 5000})
		require.Error(t, err, "peer %v in %v", ip, p)
		require.ErrorContains(t, err, "403", "peer %v in %v", ip, p)
		refused++
	}
	require.EqualValues(t, refused, ts.Stats().PermissionsRefused)
	for _, ok := range []string{"127.0.0.1", "10.9.3.4", "192.0.43.10"} {
		require.NoError(t, v4.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ok), Port: 5000}), ok)
	}
	for _, ok := range []string{"::1", "2606:4700::1111"} {
		require.NoError(t, v6.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ok), Port: 5000}), ok)
	}
}

// sampleIn is an address inside p, past its first, that is neither in
// the test's allowed range nor the node's own.
func sampleIn(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().Next()
	for a.String() == "127.0.0.1" || a.String() == "::1" || netip.MustParsePrefix("10.9.0.0/16").Contains(a) {
		a = a.Next()
	}
	if p.Contains(netip.MustParseAddr("10.9.0.1")) {
		a = netip.MustParseAddr("10.200.0.1")
	}
	return a
}

func TestRelayTransport(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	for _, transport := range []string{"udp", "tcp", "tls"} {
		user, pass := Credentials(testSecret, "s-"+transport, time.Now().Add(time.Minute))
		relay, err := dialClient(t, ts, transport, user, pass).Allocate()
		require.NoError(t, err)
		ap := relay.LocalAddr().(*net.UDPAddr).AddrPort()
		require.Equal(t, transport, ts.RelayTransport(ap))
		require.NoError(t, relay.Close())
		require.Eventually(t, func() bool { return ts.RelayTransport(ap) == "" }, 5*time.Second, 20*time.Millisecond)
	}
}

// TestHairpinToPublicAddress: behind a 1:1 NAT the node's media address
// (203.0.113.7 here) is not the host's; relayed data to it goes to the
// local media socket, and the replies reach the client from the public
// address it asked for.
func TestHairpinToPublicAddress(t *testing.T) {
	t.Parallel()
	public := netip.MustParseAddr("203.0.113.7")
	ts := startServer(t, func(c *Config) {
		c.Own = append(c.Own, public)
		c.Hairpin = map[netip.Addr]netip.Addr{public: netip.MustParseAddr("127.0.0.1")}
	})
	user, pass := Credentials(testSecret, "s1", time.Now().Add(time.Minute))
	relay, err := dialClient(t, ts, "udp", user, pass).Allocate()
	require.NoError(t, err)
	defer relay.Close()
	mediaPort := ts.media.LocalAddr().(*net.UDPAddr).Port
	_, err = relay.WriteTo([]byte("up"), &net.UDPAddr{IP: public.AsSlice(), Port: mediaPort})
	require.NoError(t, err)
	buf := make([]byte, 64)
	require.NoError(t, ts.media.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, from, err := ts.media.ReadFrom(buf)
	require.NoError(t, err)
	require.Equal(t, "up", string(buf[:n]))
	_, err = ts.media.WriteTo([]byte("down"), from)
	require.NoError(t, err)
	require.NoError(t, relay.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, peer, err := relay.ReadFrom(buf)
	require.NoError(t, err)
	require.Equal(t, "down", string(buf[:n]))
	require.Equal(t, netip.AddrPortFrom(public, uint16(mediaPort)), peer.(*net.UDPAddr).AddrPort())
}
