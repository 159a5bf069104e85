package recording

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtp/codecs"
)

// FuzzCodecFrame feeds frames of each recorded codec (the first byte
// picks it) to the checks the writer runs on every frame, and to
// trackEntry, which reads the first key frame's size and decoder
// configuration: nothing panics, a track always has a size, and the
// H.264 CodecPrivate is an AVCDecoderConfigurationRecord (ISO/IEC
// 14496-15 5.2.4.1) of the frame's own SPS and PPS. Seeds: VP8, VP9, AV1
// frames and H.264 access units (length-prefixed, as the AVC
// depacketizer gives them) of ffmpeg encodings.
func FuzzCodecFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, codec byte, frame []byte) {
		c := supportedCodecs[int(codec)%len(supportedCodecs)]
		if c.valid != nil {
			c.valid(frame)
		}
		key := c.isKey(frame)
		e := trackEntry(c, 1, frame)
		if c.video && (e.Video == nil || e.Video.PixelWidth == 0 || e.Video.PixelHeight == 0) {
			t.Fatalf("%s %x: track without a size", c.name, frame)
		}
		if c.name == "VP8" && key && len(frame) < 10 {
			t.Fatalf("VP8 %x: key frame shorter than its header", frame)
		}
		if c.name == "H264" && e.CodecPrivate != nil {
			checkAVCConfig(t, frame, e.CodecPrivate)
		}
	})
}

// checkAVCConfig reads the record back: version 1, 4-byte lengths, one
// SPS and one PPS, each a NAL unit of the frame.
func checkAVCConfig(t *testing.T, frame, c []byte) {
	t.Helper()
	if len(c) < 8 || c[0] != 1 || c[4] != 0xff || c[5] != 0xe1 {
		t.Fatalf("%x: record %x", frame, c)
	}
	n := int(binary.BigEndian.Uint16(c[6:]))
	if len(c) < 8+n+3 || c[8]&0x1f != 7 || c[1] != c[9] {
		t.Fatalf("%x: record %x, SPS of %d bytes", frame, c, n)
	}
	p := int(binary.BigEndian.Uint16(c[8+n+1:]))
	if c[8+n] != 1 || len(c) != 8+n+3+p || c[8+n+3]&0x1f != 8 {
		t.Fatalf("%x: record %x, PPS of %d bytes", frame, c, p)
	}
}

// FuzzH264Depacketizer feeds RTP payloads (RFC 6184: single NAL units,
// STAP-A, FU-A) to the recorder's H.264 depacketizer, then the frame it
// gives to the key frame and decoder configuration checks: nothing
// panics, and every NAL unit avcNALUs finds lies within the frame.
// Seeds: pion's H.264 packets of an x264 encoding.
func FuzzH264Depacketizer(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		d := &codecs.H264Packet{IsAVC: true}
		frame, err := d.Unmarshal(payload)
		if err != nil {
			return
		}
		total := 0
		for _, n := range avcNALUs(frame) {
			total += 4 + len(n)
		}
		if total > len(frame) {
			t.Fatalf("%x: NAL units of %d bytes in a frame of %d", payload, total, len(frame))
		}
		h264Key(frame)
		if c := avcConfig(frame); c != nil {
			checkAVCConfig(t, frame, c)
		}
	})
}
