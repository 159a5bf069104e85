package sfu

import (
	"testing"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

// fuzzCodecs are the MIME types the keyframe fuzz target picks from by
// its first byte: every video codec the engine forwards, and audio.
var fuzzCodecs = []string{webrtc.MimeTypeVP8, webrtc.MimeTypeVP9, webrtc.MimeTypeH264, webrtc.MimeTypeAV1, webrtc.MimeTypeOpus}

// FuzzKeyframe feeds RTP payloads of each codec to the keyframe
// detectors a track runs on every packet of its publisher: they never
// panic, they agree with pion's VP8 and VP9 depacketizers where those
// parse the payload descriptor (RFC 7741 4.2, RFC 9628 4.2), and with the
// NAL unit type of an H.264 single NAL unit packet (RFC 6184 5.6). Seeds:
// packets of the VP8 test clip (pion's payloader), VP9, H.264 and AV1
// packets of ffmpeg encodings, an Opus packet.
func FuzzKeyframe(f *testing.F) {
	f.Fuzz(func(t *testing.T, codec byte, p []byte) {
		mime := fuzzCodecs[int(codec)%len(fuzzCodecs)]
		key := IsKeyframe(mime, p)
		switch mime {
		case webrtc.MimeTypeVP8:
			var d codecs.VP8Packet
			if _, err := d.Unmarshal(p); err == nil && len(d.Payload) > 0 {
				if want := d.S == 1 && d.PID == 0 && d.Payload[0]&0x01 == 0; key != want {
					t.Fatalf("VP8 %x: keyframe %v, pion reads S=%d PID=%d P=%d", p, key, d.S, d.PID, d.Payload[0]&1)
				}
			}
		case webrtc.MimeTypeVP9:
			var d codecs.VP9Packet
			if _, err := d.Unmarshal(p); err == nil && key && (d.P || !d.B || d.SID != 0) {
				t.Fatalf("VP9 %x: keyframe, pion reads P=%v B=%v SID=%d", p, d.P, d.B, d.SID)
			}
		case webrtc.MimeTypeH264:
			if n := p0(p) & 0x1f; n >= 1 && n <= 23 && key != (n == naluIDR || n == naluSPS) {
				t.Fatalf("H.264 NAL unit type %d: keyframe %v", n, key)
			}
		case webrtc.MimeTypeOpus:
			if key {
				t.Fatal("an audio packet is a keyframe")
			}
		}
	})
}

func p0(p []byte) byte {
	if len(p) == 0 {
		return 0
	}
	return p[0]
}
