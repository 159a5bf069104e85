package recording

import (
	"encoding/binary"
	"strings"

	"github.com/at-wat/ebml-go/webm"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

// codecSpec is what the recorder knows about one codec: how to rebuild
// frames from RTP, how to spot a keyframe in a frame, and how Matroska
// names it.
type codecSpec struct {
	name            string // short name for the catalog: "VP8", "Opus", ...
	mime            string
	codecID         string // Matroska CodecID
	webm            bool   // allowed in WebM; otherwise the file is Matroska
	video           bool
	newDepacketizer func() rtp.Depacketizer
	isKey           func(frame []byte) bool
	// valid, when set, rejects a frame the depacketizer could not rebuild
	// (the writer treats it as a loss).
	valid func(frame []byte) bool
}

var supportedCodecs = [...]codecSpec{
	{name: "VP8", mime: webrtc.MimeTypeVP8, codecID: "V_VP8", webm: true, video: true,
		newDepacketizer: func() rtp.Depacketizer { return &codecs.VP8Packet{} }, isKey: vp8Key, valid: vp8Valid},
	{name: "VP9", mime: webrtc.MimeTypeVP9, codecID: "V_VP9", webm: true, video: true,
		newDepacketizer: func() rtp.Depacketizer { return &codecs.VP9Packet{} }, isKey: vp9Key},
	{name: "AV1", mime: webrtc.MimeTypeAV1, codecID: "V_AV1", webm: true, video: true,
		newDepacketizer: newAV1Depacketizer, isKey: av1Key, valid: av1Valid},
	// Matroska stores H.264 as length-prefixed NAL units with an avcC
	// record (ISO/IEC 14496-15), which the AVC depacketizer produces.
	{name: "H264", mime: webrtc.MimeTypeH264, codecID: "V_MPEG4/ISO/AVC", video: true,
		newDepacketizer: func() rtp.Depacketizer { return &codecs.H264Packet{IsAVC: true} }, isKey: h264Key, valid: h264Valid},
	{name: "Opus", mime: webrtc.MimeTypeOpus, codecID: "A_OPUS", webm: true,
		newDepacketizer: func() rtp.Depacketizer { return &codecs.OpusPacket{} }, isKey: func([]byte) bool { return true }},
}

// lookupCodec finds the spec for a MIME type (case-insensitive).
func lookupCodec(mime string) (codecSpec, bool) {
	for _, c := range supportedCodecs {
		if strings.EqualFold(c.mime, mime) {
			return c, true
		}
	}
	return codecSpec{}, false
}

// vp8Key: RFC 6386 9.1, the frame tag's first bit is 0 for a key frame.
func vp8Key(f []byte) bool { return len(f) >= 10 && f[0]&0x01 == 0 }

// vp8Valid rejects a frame shorter than its own header says (RFC 6386
// 9.1: a 3-byte frame tag whose bits 5-23 are the first partition's size,
// plus 7 bytes of start code and dimensions on a key frame): the sample
// builder can hand over a frame that lost packets, and a decoder reading
// it fails ("header size larger than data provided").
func vp8Valid(f []byte) bool {
	if len(f) < 3 {
		return false
	}
	tag := uint32(f[0]) | uint32(f[1])<<8 | uint32(f[2])<<16
	header := 3
	if tag&0x01 == 0 {
		header = 10
	}
	return len(f) >= header+int(tag>>5)
}

// vp8Size reads the dimensions of a VP8 key frame (RFC 6386 9.1: start code
// 9d 01 2a, then 14-bit width and height with 2 bits of scaling each).
func vp8Size(f []byte) (w, h uint64) {
	if !vp8Key(f) || f[3] != 0x9d || f[4] != 0x01 || f[5] != 0x2a {
		return 0, 0
	}
	return uint64(binary.LittleEndian.Uint16(f[6:]) & 0x3fff), uint64(binary.LittleEndian.Uint16(f[8:]) & 0x3fff)
}

// vp9Key reads the uncompressed header (VP9 bitstream spec 6.2):
// frame_marker(2) profile(2, plus a reserved bit for profile 3)
// show_existing_frame(1) frame_type(1, 0 = key frame).
func vp9Key(f []byte) bool {
	if len(f) < 1 || f[0]>>6 != 2 {
		return false
	}
	r := bitReader{b: f, pos: 2}
	profile := r.bit() | r.bit()<<1
	if profile == 3 {
		r.bit()
	}
	if r.bit() == 1 { // show_existing_frame
		return false
	}
	return r.bit() == 0 && !r.overrun()
}

// vp9Size reads a key frame's size from its uncompressed header (6.2,
// color_config 6.2.2, frame_size 6.2.3).
func vp9Size(f []byte) (w, h uint64) {
	if !vp9Key(f) {
		return 0, 0
	}
	r := bitReader{b: f, pos: 2}
	profile := r.bit() | r.bit()<<1
	if profile == 3 {
		r.bit()
	}
	r.bits(4)  // show_existing_frame, frame_type, show_frame, error_resilient_mode
	r.bits(24) // frame_sync_code
	if profile >= 2 {
		r.bit() // ten_or_twelve_bit
	}
	if cs := r.bits(3); cs != 7 { // not CS_RGB
		r.bit() // color_range
		if profile == 1 || profile == 3 {
			r.bits(3) // subsampling_x, subsampling_y, reserved
		}
	} else if profile == 1 || profile == 3 {
		r.bit()
	}
	w, h = r.bits(16)+1, r.bits(16)+1
	if r.overrun() {
		return 0, 0
	}
	return w, h
}

// bitReader reads big-endian bit fields.
type bitReader struct {
	b   []byte
	pos int
}

func (r *bitReader) bit() uint64 {
	if r.pos/8 >= len(r.b) {
		r.pos++
		return 0
	}
	v := r.b[r.pos/8] >> (7 - r.pos%8) & 1
	r.pos++
	return uint64(v)
}

func (r *bitReader) bits(n int) uint64 {
	var v uint64
	for range n {
		v = v<<1 | r.bit()
	}
	return v
}

func (r *bitReader) overrun() bool { return r.pos > len(r.b)*8 }

// avcNALUs splits a length-prefixed (4-byte) AVC frame into NAL units.
func avcNALUs(f []byte) [][]byte {
	var out [][]byte
	for len(f) >= 4 {
		n := int(binary.BigEndian.Uint32(f))
		if n == 0 || n > len(f)-4 {
			break
		}
		out = append(out, f[4:4+n])
		f = f[4+n:]
	}
	return out
}

// h264Key: the frame holds an IDR slice (NAL type 5, H.264 7.4.1.2).
func h264Key(f []byte) bool {
	for _, n := range avcNALUs(f) {
		if n[0]&0x1f == 5 {
			return true
		}
	}
	return false
}

// h264Valid: the frame holds a coded slice (NAL types 1 to 5, H.264
// 7.4.1.2). What is left of a frame whose slices were lost (an access unit
// delimiter, an SEI) is no picture, and decoders refuse it.
func h264Valid(f []byte) bool {
	for _, n := range avcNALUs(f) {
		if t := n[0] & 0x1f; t >= 1 && t <= 5 {
			return true
		}
	}
	return false
}

// avcConfig builds the AVCDecoderConfigurationRecord (ISO/IEC 14496-15
// 5.2.4.1) Matroska wants as CodecPrivate, from the key frame's SPS and
// PPS. It is nil when the key frame carries neither.
func avcConfig(f []byte) []byte {
	var sps, pps []byte
	for _, n := range avcNALUs(f) {
		switch n[0] & 0x1f {
		case 7:
			sps = n
		case 8:
			pps = n
		}
	}
	if len(sps) < 4 || pps == nil {
		return nil
	}
	c := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1} // 4-byte lengths, 1 SPS
	c = binary.BigEndian.AppendUint16(c, uint16(len(sps)))
	c = append(c, sps...)
	c = append(c, 1)
	c = binary.BigEndian.AppendUint16(c, uint16(len(pps)))
	return append(c, pps...)
}

// opusHead is the Opus identification header (RFC 7845 5.1) Matroska
// wants as CodecPrivate. WebRTC Opus is always negotiated as 48 kHz
// stereo (RFC 7587 7); the decoder copes with mono frames.
func opusHead() []byte {
	h := []byte("OpusHead")
	h = append(h, 1, 2) // version, channels
	h = binary.LittleEndian.AppendUint16(h, 0)
	h = binary.LittleEndian.AppendUint32(h, 48000)
	h = binary.LittleEndian.AppendUint16(h, 0) // output gain
	return append(h, 0)                        // channel mapping family
}

// trackEntry describes a file track. key is the first video key frame (it
// gives the picture size and, for H.264, the decoder configuration).
func trackEntry(c codecSpec, number uint64, key []byte) webm.TrackEntry {
	e := webm.TrackEntry{TrackNumber: number, TrackUID: number, CodecID: c.codecID}
	if !c.video {
		e.Name, e.TrackType = "audio", 2
		e.CodecPrivate = opusHead()
		e.SeekPreRoll = 80_000_000 // RFC 7845 and the Matroska Opus mapping: 80 ms
		e.Audio = &webm.Audio{SamplingFrequency: 48000, Channels: 2}
		return e
	}
	e.Name, e.TrackType = "video", 1
	var w, h uint64
	switch c.name {
	case "VP8":
		w, h = vp8Size(key)
	case "VP9":
		w, h = vp9Size(key)
	case "AV1":
		w, h = av1Size(key)
		e.CodecPrivate = av1Config(key)
	case "H264":
		w, h = avcSize(key)
		e.CodecPrivate = avcConfig(key)
	}
	if w == 0 || h == 0 {
		// Matroska requires a non-zero size; decoders take the real one
		// from the bitstream.
		w, h = 640, 480
	}
	e.Video = &webm.Video{PixelWidth: w, PixelHeight: h}
	return e
}
