package sfu

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/srtp/v3"
)

// A connection that only sends can skip pion's per-packet write path
// (srtp session, mux endpoint, ICE connection) and seal its RTP straight
// into the shared socket's batches (direct.go). That needs the SRTP keys
// pion derives from the DTLS handshake and keeps to itself. keyCapture
// learns them through two handshake hooks pion's SettingEngine offers:
// the key log (client random and master secret) and the server's hello
// (server random, cipher suite, SRTP profile). The keys then come from
// the TLS exporter, exactly as pion derives its own (RFC 5764 4.2,
// RFC 5705 4).
//
// Only the DTLS server sees its hello, so the engine takes the server
// role on every sending connection (RFC 5763 5: an answerer may be
// passive). A connection whose keys cannot be learned (client role, a
// cipher suite or profile not listed below) keeps pion's path.
type keyCapture struct {
	mu           sync.Mutex
	clientRandom []byte
	masterSecret []byte
	serverRandom []byte
	suite        uint16
	profile      dtls.SRTPProtectionProfile
	mki          bool
}

// Write takes pion's key log: "CLIENT_RANDOM <hex> <hex>\n" (the NSS key
// log format). It never fails: a line it does not understand leaves the
// connection on pion's path.
func (k *keyCapture) Write(p []byte) (int, error) {
	fields := bytes.Fields(p)
	if len(fields) != 3 || string(fields[0]) != "CLIENT_RANDOM" {
		return len(p), nil
	}
	random, err1 := hex.DecodeString(string(fields[1]))
	secret, err2 := hex.DecodeString(string(fields[2]))
	if err1 != nil || err2 != nil {
		return len(p), nil
	}
	k.mu.Lock()
	k.clientRandom, k.masterSecret = random, secret
	k.mu.Unlock()
	return len(p), nil
}

// serverHello records what the server's hello says and sends it unchanged.
func (k *keyCapture) serverHello(m handshake.MessageServerHello) handshake.Message {
	random := m.Random.MarshalFixed()
	k.mu.Lock()
	k.serverRandom = random[:]
	if m.CipherSuiteID != nil {
		k.suite = *m.CipherSuiteID
	}
	for _, ext := range m.Extensions {
		if u, ok := ext.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 {
			k.profile = dtls.SRTPProtectionProfile(u.ProtectionProfiles[0])
			k.mki = len(u.MasterKeyIdentifier) > 0
		}
	}
	k.mu.Unlock()
	return &m
}

// contexts returns the SRTP contexts this side (the DTLS server) seals
// RTP and opens RTCP with, once the handshake is complete; inOpts are
// options of the opening one.
func (k *keyCapture) contexts(inOpts ...srtp.ContextOption) (out, in *srtp.Context, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	// Asked once per connection: the secrets are not kept beyond it.
	defer k.forgetLocked()
	profile, err := k.profileLocked()
	if err != nil {
		return nil, nil, err
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(k, false); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errNoKeys, err)
	}
	if out, err = srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile); err != nil {
		return nil, nil, err
	}
	in, err = srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile, inOpts...)
	return out, in, err
}

// forgetLocked clears what the keys were derived from.
func (k *keyCapture) forgetLocked() {
	clear(k.masterSecret)
	k.masterSecret, k.clientRandom, k.serverRandom = nil, nil, nil
}

// profileLocked checks that the keys can be derived and returns the SRTP
// profile they are for.
func (k *keyCapture) profileLocked() (srtp.ProtectionProfile, error) {
	if k.masterSecret == nil || k.serverRandom == nil {
		return 0, fmt.Errorf("%w: handshake not seen as the server", errNoKeys)
	}
	// The exporter's PRF is the cipher suite's (RFC 5246 5): SHA-256 for
	// these two AES-GCM suites, which are what browsers pick.
	if k.suite != uint16(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256) &&
		k.suite != uint16(dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) {
		return 0, fmt.Errorf("%w: cipher suite %#04x", errNoKeys, k.suite)
	}
	if k.mki {
		return 0, fmt.Errorf("%w: master key identifier", errNoKeys)
	}
	switch k.profile {
	case dtls.SRTP_AEAD_AES_128_GCM:
		return srtp.ProtectionProfileAeadAes128Gcm, nil
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		return srtp.ProtectionProfileAes128CmHmacSha1_80, nil
	}
	return 0, fmt.Errorf("%w: SRTP profile %#04x", errNoKeys, uint16(k.profile))
}

// ExportKeyingMaterial is the TLS 1.2 exporter (RFC 5705 4) without a
// context, as dtls.State computes it; the caller holds k.mu.
func (k *keyCapture) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if len(context) != 0 {
		return nil, errNoKeys
	}
	seed := make([]byte, 0, len(label)+len(k.clientRandom)+len(k.serverRandom))
	seed = append(append(append(seed, label...), k.clientRandom...), k.serverRandom...)
	return prf.PHash(k.masterSecret, seed, length, sha256.New)
}
