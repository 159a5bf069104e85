package sfu

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

// TestCertificateSharedAndRenewed: peer connections share one DTLS
// certificate until it comes within certRenewBefore of expiring.
func TestCertificateSharedAndRenewed(t *testing.T) {
	t.Parallel()
	var c certSource
	now := time.Now()
	first, err := c.get(now)
	require.NoError(t, err)
	again, err := c.get(now.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, first[0].Equals(again[0]), "one certificate for every connection")
	expires := first[0].Expires()
	require.True(t, expires.After(now.Add(certRenewBefore)))
	renewed, err := c.get(expires.Add(-certRenewBefore))
	require.NoError(t, err)
	require.False(t, first[0].Equals(renewed[0]), "renewed before it expires")
	require.False(t, renewed[0].Expires().Before(expires))
}

// TestPeerConnectionsShareFingerprint: two subscribers of an engine offer
// the same DTLS fingerprint, and both connect.
func TestPeerConnectionsShareFingerprint(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	tp := startPublisher(t, e, 10, true)
	video, audio := tp.waitTracks()
	var prints []string
	for range 2 {
		s := startSubscriber(t, e, []*Track{video, audio}, true)
		require.Equal(t, webrtc.PeerConnectionStateConnected, s.pc.ConnectionState())
		prints = append(prints, fingerprint(t, s.pc.RemoteDescription().SDP))
	}
	require.NotEmpty(t, prints[0])
	require.Equal(t, prints[0], prints[1])
}

// fingerprint is the a=fingerprint value of an SDP.
func fingerprint(t *testing.T, sdp string) string {
	t.Helper()
	for _, line := range strings.Split(sdp, "\r\n") {
		if v, ok := strings.CutPrefix(line, "a=fingerprint:"); ok {
			return v
		}
	}
	t.Fatal("no fingerprint in the SDP")
	return ""
}
