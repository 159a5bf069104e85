package sfu

import (
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// FuzzFmtp matches an offer's codec, with fuzzed format parameters (RFC
// 8866 6.15; for H.264 RFC 6184 8.1, for VP9 RFC 9628 6), against the
// codecs the engine forwards, as the offer checks and forwarding do: it
// never panics, and matchCodec only ever picks a codec of the offered
// MIME type and clock rate. parseFmtp gives lower-case, non-empty keys.
// Seeds: fmtp lines of Chrome, Firefox, Safari and GStreamer offers.
func FuzzFmtp(f *testing.F) {
	video, audio := engineCodecs()
	list := append(video, audio...)
	f.Fuzz(func(t *testing.T, codec byte, a, b string) {
		mime := fuzzCodecs[int(codec)%len(fuzzCodecs)]
		rate := uint32(90000)
		if strings.HasPrefix(mime, "audio/") {
			rate = 48000
		}
		for _, line := range []string{a, b} {
			for k := range parseFmtp(line) {
				if k == "" || k != strings.ToLower(k) {
					t.Fatalf("%q: key %q", line, k)
				}
			}
			c := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: rate, SDPFmtpLine: line}}
			if m, ok := matchCodec(c, list); ok && (!strings.EqualFold(m.MimeType, mime) || m.ClockRate != rate) {
				t.Fatalf("%s %q matched %s/%d", mime, line, m.MimeType, m.ClockRate)
			}
			if c.SDPFmtpLine = b; line == b {
				c.SDPFmtpLine = a
			}
			// The other line as the only codec: matched or not, but
			// never another type.
			one := []webrtc.RTPCodecParameters{{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: rate, SDPFmtpLine: line}}}
			if m, ok := matchCodec(c, one); ok && m.SDPFmtpLine != line {
				t.Fatalf("%s %q matched %q", mime, c.SDPFmtpLine, m.SDPFmtpLine)
			}
		}
	})
}
