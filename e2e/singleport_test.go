package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
	"lectern/config"
)

// TestSinglePortICETCPAndTURN: with --single-port the HTTP port also
// carries ICE-TCP and TURN over TCP. A student that only has TCP plays
// the class through the HTTP port, and so does a relay-only WHEP player
// whose TURN URL names the HTTP port; the separate ICE-TCP and TURN TCP
// ports are not opened.
func TestSinglePortICETCPAndTURN(t *testing.T) {
	t.Parallel()
	srv := startServerWith(t, "tokens", func(c *config.Config) {
		c.SinglePort, c.TURN, c.TURNUDPPort = true, true, 0
	})
	httpPort := srv.app.Addr().Port
	require.Equal(t, httpPort, srv.app.Engine().TCPAddr().Port, "ICE-TCP is on the HTTP port")
	require.Nil(t, srv.app.TURN().Addrs().TCP, "no TURN TCP port of its own")
	room := newRoom()
	teacher := srv.dial(t, srv.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
	publishClip(t, teacher, clipIVF, clipOgg)

	tcpAPI, err := client.NewAPI(client.APIOptions{TCPOnly: true})
	require.NoError(t, err)
	st := srv.dial(t, srv.token(t, room, auth.RoleStudent, "Tim"), client.Options{API: tcpAPI})
	tcpURL := "turn:127.0.0.1:" + strconv.Itoa(httpPort) + "?transport=tcp"
	require.Contains(t, st.Welcome().ICEServers[0].URLs, tcpURL)
	av := []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio}
	subs := findSubs(t, map[string]*client.Client{"tcp": st}, teacher.ID(), av)
	waitFor(t, 30*time.Second, "a second of media over the HTTP port", func() (bool, string) {
		v := subs["tcp"].Video()
		return v.Packets >= 60, fmt.Sprintf("%d video packets", v.Packets)
	})
	waitFor(t, 10*time.Second, "the teacher's view", func() (bool, string) {
		got := teacher.Connections()[st.ID()]
		return got == "prflx/tcp", got
	})

	// TURN over TCP through the HTTP port: a relay-only WHEP player.
	w := st.Welcome().ICEServers[0]
	servers := []webrtc.ICEServer{{URLs: []string{tcpURL}, Username: w.Username, Credential: w.Credential,
		CredentialType: webrtc.ICECredentialTypePassword}}
	v := newWHEPViewerOn(t, relayOnlyPC(t, servers, client.APIOptions{}))
	v.url = srv.base + negotiate(t, v.pc, srv.base+"/whep/"+room, srv.token(t, room, auth.RoleStudent, "Pia"))
	waitConnected(t, v.pc)
	v.waitMedia(t, 50)
	require.Equal(t, webrtc.ICECandidateTypeRelay, selectedPair(t, v.pc).Local.Typ)

	// The pages still load from the same port.
	status, _, _ := mediaHTTP(t, http.MethodGet, srv.base+"/healthz", "", "")
	require.Equal(t, http.StatusOK, status)
}

// TestSinglePortTLS: with --tls-cert and --tls-key the single port is
// HTTPS and carries TURN over TLS too (and TURN and ICE-TCP over plain
// TCP, which need no TLS).
func TestSinglePortTLS(t *testing.T) {
	t.Parallel()
	cert, key := writeCert(t, "127.0.0.1")
	srv := startServerWith(t, "tokens", func(c *config.Config) {
		c.SinglePort, c.TURN, c.TURNUDPPort = true, true, 0
		c.TLSCert, c.TLSKey = cert, key
	})
	addr := srv.app.Addr().String()
	httpsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test certificate
	resp, err := httpsClient.Get("https://" + addr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	ice := srv.app.TURN().ICEServers("p1", time.Time{}, "127.0.0.1")
	require.Contains(t, ice[0].URLs, "turns:127.0.0.1:"+strconv.Itoa(srv.app.Addr().Port)+"?transport=tcp")
	for _, transport := range []string{"tls", "tcp"} {
		var conn net.Conn
		if transport == "tls" {
			conn, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test certificate
		} else {
			conn, err = net.Dial("tcp", addr)
		}
		require.NoError(t, err)
		cl, err := turn.NewClient(&turn.ClientConfig{
			STUNServerAddr: addr, TURNServerAddr: addr, Conn: turn.NewSTUNConn(conn),
			Username: ice[0].Username, Password: ice[0].Credential.(string), Realm: "lectern",
		})
		require.NoError(t, err)
		require.NoError(t, cl.Listen())
		relay, err := cl.Allocate()
		require.NoError(t, err, transport)
		require.Equal(t, transport, srv.app.TURN().RelayTransport(relay.LocalAddr().(*net.UDPAddr).AddrPort()))
		require.NoError(t, relay.Close())
		cl.Close()
		require.NoError(t, conn.Close())
	}
}

// writeCert writes a self-signed certificate for ip and its key.
func writeCert(t *testing.T, ip string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: ip},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	kd, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600))
	return certFile, keyFile
}
