package sfu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// certRenewBefore: the engine's DTLS certificate is replaced this long
// before it expires. A certificate pion generates is valid for a month,
// and a connection keeps the one it was made with for its whole life.
const certRenewBefore = 7 * 24 * time.Hour

// certSource hands every peer connection of the engine the same DTLS
// certificate. Left to itself pion generates an ECDSA key and a
// certificate for each connection: a signature's work on every join, a
// burst of them when a class starts, and about 3 KB kept per connection.
// A server's certificate need not differ per connection: each peer
// checks the fingerprint signalled in the SDP (RFC 8842), whichever
// certificate it names.
type certSource struct {
	mu  sync.Mutex
	cur []webrtc.Certificate
}

// get returns the current certificate, generating a new one when there
// is none or it expires within certRenewBefore of now.
func (c *certSource) get(now time.Time) ([]webrtc.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) > 0 && now.Before(c.cur[0].Expires().Add(-certRenewBefore)) {
		return c.cur, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sfu: DTLS key: %w", err)
	}
	cert, err := webrtc.GenerateCertificate(key)
	if err != nil {
		return nil, fmt.Errorf("sfu: DTLS certificate: %w", err)
	}
	c.cur = []webrtc.Certificate{*cert}
	return c.cur, nil
}

// newPeerConnection makes a peer connection of api with the engine's
// certificate.
func (e *Engine) newPeerConnection(api *webrtc.API) (*webrtc.PeerConnection, error) {
	return e.newPeerConnectionWith(api, webrtc.Configuration{})
}

// newPeerConnectionWith is newPeerConnection with more of cfg set.
func (e *Engine) newPeerConnectionWith(api *webrtc.API, cfg webrtc.Configuration) (*webrtc.PeerConnection, error) {
	certs, err := e.certs.get(time.Now())
	if err != nil {
		return nil, err
	}
	cfg.Certificates = certs
	return api.NewPeerConnection(cfg)
}
