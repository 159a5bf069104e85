package sfu

import (
	"net/netip"
	"testing"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// FuzzRTCPTap feeds the shared socket's reader (rtcpTaps.tap, then
// directOut.receive) what a student may send: the fuzzed bytes as they
// are, and sealed with the student's SRTCP keys (RFC 3711 3.4) from a
// real DTLS handshake, so they reach rtcp.Unmarshal and the down track's
// handling of receiver reports, NACKs, PLIs and FIRs. Nothing panics; a
// datagram that is not RTCP (RFC 7983 7, RFC 5761 4) or comes from
// another address is left to pion; a sealed one that parses is taken and
// counted, once. Seeds: RTCP compounds of pion's marshalling (receiver
// report with SDES, NACK, PLI, FIR, REMB, transport-wide feedback).
func FuzzRTCPTap(f *testing.F) {
	o, _, client := directPair(f, dtls.SRTP_AEAD_AES_128_GCM)
	seal, _ := clientContexts(f, client, srtp.ProtectionProfileAeadAes128Gcm)
	tt := newTestTrack(webrtc.RTPCodecTypeVideo)
	f.Cleanup(tt.stop)
	o.downs = []*DownTrack{startDownTrack(f, tt, &recordingWriter{}, 7)}
	filed := netip.MustParseAddrPort("127.0.0.1:5000")
	stranger := netip.MustParseAddrPort("127.0.0.1:5001")
	o.taps.add(filed, o)
	f.Fuzz(func(t *testing.T, b []byte) {
		if o.taps.tap(b, stranger) {
			t.Fatalf("%x taken from an address not filed", b)
		}
		rtcpish := len(b) >= 8 && b[0] >= 128 && b[0] <= 191 && b[1] >= 192 && b[1] <= 223
		if took := o.taps.tap(b, filed); took && !rtcpish {
			t.Fatalf("%x taken: not RTCP", b)
		}
		sealed, err := seal.EncryptRTCP(nil, b, nil)
		if err != nil {
			return // not even an RTCP header: the student cannot send it
		}
		before := o.received.Load()
		took := o.taps.tap(sealed, filed)
		_, perr := rtcp.Unmarshal(b)
		if rtcpish && !took {
			t.Fatalf("%x sealed with the student's keys left to pion", b)
		}
		if got := o.received.Load() - before; took && got != map[bool]uint64{true: 1}[perr == nil] {
			t.Fatalf("%x: %d packets handed on, parse error %v", b, got, perr)
		}
		if o.taps.tap(sealed, filed) && o.received.Load()-before > 1 {
			t.Fatal("a replayed packet was handed on (RFC 3711 3.3.2)")
		}
	})
}
