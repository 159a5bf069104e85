package turnserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/turn/v5"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// testServer runs a server on loopback with every transport; media is a
// UDP socket standing in for the node's media port.
type testServer struct {
	*Server
	udp, tcp, tls string
	media         *net.UDPConn
}

func startServer(t *testing.T, edit func(*Config)) *testServer {
	t.Helper()
	media, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = media.Close() })
	cfg := Config{
		Secret: testSecret, UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0",
		TLS: selfSigned(t), RelayIP: net.IPv4(127, 0, 0, 1),
		Own:    []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Ports:  []int{media.LocalAddr().(*net.UDPAddr).Port},
		Logger: zerolog.Nop(),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ts := &testServer{Server: s, media: media}
	a := s.Addrs()
	ts.udp, ts.tcp, ts.tls = a.UDP.String(), a.TCP.String(), a.TLS.String()
	return ts
}

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// dialClient makes a pion TURN client over transport ("udp", "tcp" or
// "tls") with the given credentials; Listen has been called.
func dialClient(t *testing.T, ts *testServer, transport, user, pass string) *turn.Client {
	t.Helper()
	return dial(t, ts, transport, user, pass, 0)
}

// dialClientFamily is a UDP client asking for relays of family f (RFC 6156).
func dialClientFamily(t *testing.T, ts *testServer, user, pass string, f turn.RequestedAddressFamily) *turn.Client {
	t.Helper()
	return dial(t, ts, "udp", user, pass, f)
}

func dial(t *testing.T, ts *testServer, transport, user, pass string, f turn.RequestedAddressFamily) *turn.Client {
	t.Helper()
	var conn net.PacketConn
	var addr string
	switch transport {
	case "udp":
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		conn, addr = pc, ts.udp
	case "tcp":
		c, err := net.Dial("tcp", ts.tcp)
		require.NoError(t, err)
		conn, addr = turn.NewSTUNConn(c), ts.tcp
	case "tls":
		c, err := tls.Dial("tcp", ts.tls, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test certificate
		require.NoError(t, err)
		conn, addr = turn.NewSTUNConn(c), ts.tls
	}
	cl, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: user, Password: pass, Realm: DefaultRealm, RTO: 50 * time.Millisecond,
		RequestedAddressFamily: f,
	})
	require.NoError(t, err)
	require.NoError(t, cl.Listen())
	t.Cleanup(func() { cl.Close(); _ = conn.Close() })
	return cl
}
