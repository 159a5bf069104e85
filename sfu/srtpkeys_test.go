package sfu

import (
	"net"
	"sync"
	"testing"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/stretchr/testify/require"
)

// dtlsHandshake runs a real DTLS handshake over loopback UDP, the server
// with kc's hooks, and returns both ends' connection states.
func dtlsHandshake(t testing.TB, kc *keyCapture, suite dtls.CipherSuiteID, profile dtls.SRTPProtectionProfile) (server, client dtls.State) {
	t.Helper()
	a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	cert, err := selfsign.GenerateSelfSigned()
	require.NoError(t, err)
	opts := []dtls.Option{
		dtls.WithCertificates(cert),
		dtls.WithInsecureSkipVerify(true),
		dtls.WithCipherSuites(suite),
		dtls.WithSRTPProtectionProfiles(profile),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
	}
	sopts := []dtls.ServerOption{dtls.WithKeyLogWriter(kc), dtls.WithServerHelloMessageHook(kc.serverHello)}
	copts := []dtls.ClientOption{}
	for _, o := range opts {
		sopts, copts = append(sopts, o), append(copts, o)
	}
	sc, err := dtls.ServerWithOptions(a, b.LocalAddr(), sopts...)
	require.NoError(t, err)
	cc, err := dtls.ClientWithOptions(b, a.LocalAddr(), copts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sc.Close(); _ = cc.Close() })
	var wg sync.WaitGroup
	wg.Add(1)
	var serr error
	go func() { defer wg.Done(); serr = sc.Handshake() }()
	require.NoError(t, cc.Handshake())
	wg.Wait()
	require.NoError(t, serr)
	server, ok := sc.ConnectionState()
	require.True(t, ok)
	client, ok = cc.ConnectionState()
	require.True(t, ok)
	return server, client
}

// srtpProfile is an SRTP profile by its DTLS and SRTP names.
type srtpProfile struct {
	name string
	dtls dtls.SRTPProtectionProfile
	srtp srtp.ProtectionProfile
}

// srtpProfiles are the profiles the engine offers (engine.go).
func srtpProfiles() []srtpProfile {
	return []srtpProfile{
		{"AES-GCM", dtls.SRTP_AEAD_AES_128_GCM, srtp.ProtectionProfileAeadAes128Gcm},
		{"AES-CM HMAC-SHA1-80", dtls.SRTP_AES128_CM_HMAC_SHA1_80, srtp.ProtectionProfileAes128CmHmacSha1_80},
	}
}

// clientContexts are the DTLS client's SRTP contexts, derived through
// pion's own exporter: seal for what it sends, open for what it gets.
func clientContexts(t testing.TB, client dtls.State, p srtp.ProtectionProfile) (seal, open *srtp.Context) {
	t.Helper()
	cfg := srtp.Config{Profile: p}
	require.NoError(t, cfg.ExtractSessionKeysFromDTLS(&client, true))
	seal, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, p)
	require.NoError(t, err)
	open, err = srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, p)
	require.NoError(t, err)
	return seal, open
}

// TestKeyCaptureMatchesTheHandshake: the keys learned from the hooks are
// those the client derives through pion's own exporter, both ways and for
// both SRTP profiles the engine offers: RTP the server seals opens at the
// client, RTCP the client seals opens at the server.
func TestKeyCaptureMatchesTheHandshake(t *testing.T) {
	t.Parallel()
	for _, c := range srtpProfiles() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			kc := &keyCapture{}
			_, client := dtlsHandshake(t, kc, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, c.dtls)
			out, in, err := kc.contexts()
			require.NoError(t, err)
			clientOut, clientIn := clientContexts(t, client, c.srtp)

			// The client's RTCP opens with the server's opening keys.
			rr, err := (&rtcp.ReceiverReport{SSRC: 9}).Marshal()
			require.NoError(t, err)
			sealedRR, err := clientOut.EncryptRTCP(nil, rr, nil)
			require.NoError(t, err)
			openedRR, err := in.DecryptRTCP(nil, sealedRR, nil)
			require.NoError(t, err)
			require.Equal(t, rr, openedRR)

			for seq := uint16(65530); seq != 5; seq++ { // across a rollover
				pkt := rtp.Packet{
					Header:  rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: 1, SSRC: 7},
					Payload: []byte{1, 2, 3, byte(seq)},
				}
				raw, err := pkt.Marshal()
				require.NoError(t, err)
				sealed, err := out.EncryptRTP(nil, raw, nil)
				require.NoError(t, err)
				require.NotEqual(t, raw, sealed[:len(raw)], "payload not encrypted")
				opened, err := clientIn.DecryptRTP(nil, sealed, nil)
				require.NoError(t, err, "seq %d", seq)
				require.Equal(t, raw, opened)
			}
		})
	}
}

// TestKeyCaptureRefuses: what the hooks cannot vouch for leaves the
// connection on pion's path.
func TestKeyCaptureRefuses(t *testing.T) {
	t.Parallel()
	t.Run("nothing seen", func(t *testing.T) {
		_, _, err := (&keyCapture{}).contexts()
		require.ErrorIs(t, err, errNoKeys)
	})
	t.Run("other cipher suite", func(t *testing.T) {
		kc := &keyCapture{}
		dtlsHandshake(t, kc, dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, dtls.SRTP_AEAD_AES_128_GCM)
		_, _, err := kc.contexts()
		require.ErrorIs(t, err, errNoKeys)
	})
	t.Run("key log garbage", func(t *testing.T) {
		kc := &keyCapture{}
		for _, line := range []string{"", "CLIENT_RANDOM zz 00\n", "SERVER_RANDOM 00 00\n", "CLIENT_RANDOM 00\n"} {
			n, err := kc.Write([]byte(line))
			require.NoError(t, err)
			require.Equal(t, len(line), n)
		}
		_, _, err := kc.contexts()
		require.ErrorIs(t, err, errNoKeys)
	})
}
