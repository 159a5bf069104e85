package sfu

import (
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// FuzzFmtp checks the comparison of an offer's format parameters (RFC
// 8866 6.15, RFC 6184 8.1) with the engine's: it never panics, is
// symmetric, and matchCodec only ever picks a codec of the offered MIME
// type and clock rate. Seeds: fmtp lines of Chrome, Firefox, Safari and
// GStreamer offers.
func FuzzFmtp(f *testing.F) {
	video, audio := engineCodecs()
	list := append(video, audio...)
	f.Fuzz(func(t *testing.T, codec byte, a, b string) {
		mime := fuzzCodecs[int(codec)%len(fuzzCodecs)]
		if fmtpCompatible(mime, a, b) != fmtpCompatible(mime, b, a) {
			t.Fatalf("%s: %q and %q compatible one way only", mime, a, b)
		}
		rate := uint32(90000)
		if strings.HasPrefix(mime, "audio/") {
			rate = 48000
		}
		c := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: rate, SDPFmtpLine: a}}
		if m, ok := matchCodec(c, list); ok && (!strings.EqualFold(m.MimeType, mime) || m.ClockRate != rate) {
			t.Fatalf("%s %q matched %s/%d", mime, a, m.MimeType, m.ClockRate)
		}
	})
}
