package recording

import (
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// AV1 in WebM follows the Matroska AV1 codec mapping: a Block holds one
// temporal unit in the low-overhead bitstream format (AV1 spec 5.2, every
// OBU with obu_has_size_field = 1) without its temporal delimiter, a key
// frame Block holds a sequence header OBU and a shown KEY_FRAME, and
// CodecPrivate is the AV1CodecConfigurationRecord (AV1-ISOBMFF 2.3.3)
// followed by the sequence header OBU.

// OBU types (AV1 spec 6.2.2).
const (
	obuSequenceHeader = 1
	obuFrameHeader    = 3
	obuFrame          = 6
	obuPadding        = 15
)

// av1BadOBU stands for data the RTP depacketizer could not parse: its
// obu_forbidden_bit is set, so av1Valid rejects the temporal unit it ends
// up in and the writer waits for the next key frame.
const av1BadOBU = 0x80

// av1Depacketizer turns AV1 RTP payloads (the AV1 RTP payload format,
// section 4) into OBUs with size fields, using pion's depacketizer, which
// already drops temporal delimiter and tile list OBUs (RTP format section
// 5). It also drops padding OBUs (the Matroska mapping lets a muxer remove
// them) and never fails: pion's sample builder silently skips a frame
// whose payload fails to parse, and the frame after it would then be
// written although it references the skipped one.
type av1Depacketizer struct {
	codecs.AV1Depacketizer
}

func newAV1Depacketizer() rtp.Depacketizer { return &av1Depacketizer{} }

func (d *av1Depacketizer) Unmarshal(payload []byte) ([]byte, error) {
	out, err := d.AV1Depacketizer.Unmarshal(payload)
	if err != nil {
		return []byte{av1BadOBU}, nil
	}
	kept := out[:0]
	for rest := out; len(rest) > 0; {
		o, ok := nextOBU(rest)
		if !ok {
			return []byte{av1BadOBU}, nil
		}
		if o.typ != obuPadding {
			kept = append(kept, rest[:o.size]...)
		}
		rest = rest[o.size:]
	}
	return kept, nil
}

// obu is one OBU of a temporal unit (AV1 spec 5.3).
type obu struct {
	typ     int
	size    int    // header, size field and payload
	payload []byte // after the header and size field
}

// nextOBU reads the OBU at the start of b: obu_header (5.3.2, with the
// extension byte when obu_extension_flag is set) and obu_size (leb128,
// 4.10.5). Without a size field the OBU fills the rest of b, which the
// Matroska mapping allows for the last OBU of a Block.
func nextOBU(b []byte) (obu, bool) {
	if len(b) == 0 || b[0]&0x80 != 0 { // obu_forbidden_bit
		return obu{}, false
	}
	h := 1
	if b[0]&0x04 != 0 { // obu_extension_flag
		h = 2
	}
	if len(b) < h {
		return obu{}, false
	}
	o := obu{typ: int(b[0] >> 3 & 0x0f)}
	if b[0]&0x02 == 0 { // obu_has_size_field
		o.size, o.payload = len(b), b[h:]
		return o, true
	}
	n, l, ok := leb128(b[h:])
	if !ok || n > uint64(len(b)-h-l) {
		return obu{}, false
	}
	o.size = h + l + int(n)
	o.payload = b[h+l : o.size]
	return o, true
}

// leb128 decodes an unsigned LEB128 value (AV1 spec 4.10.5: at most 8
// bytes), returning it and its length.
func leb128(b []byte) (uint64, int, bool) {
	var v uint64
	for i := 0; i < 8 && i < len(b); i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1, true
		}
	}
	return 0, 0, false
}

// av1OBUs calls fn for each OBU of a temporal unit until fn returns false;
// it reports whether the whole unit parsed.
func av1OBUs(tu []byte, fn func(o obu, raw []byte) bool) bool {
	for len(tu) > 0 {
		o, ok := nextOBU(tu)
		if !ok {
			return false
		}
		if !fn(o, tu[:o.size]) {
			return true
		}
		tu = tu[o.size:]
	}
	return true
}

// av1Valid: every OBU parses and the unit holds a frame (the Matroska
// mapping requires a frame header OBU in each Block).
func av1Valid(tu []byte) bool {
	frames := 0
	ok := av1OBUs(tu, func(o obu, _ []byte) bool {
		if o.typ == obuFrame || o.typ == obuFrameHeader {
			frames++
		}
		return true
	})
	return ok && frames > 0
}

// av1Key: the unit carries a sequence header and its first frame is a
// shown KEY_FRAME, which makes it a random access point (AV1 spec 7.5;
// the Matroska mapping marks only such Blocks as key frames).
func av1Key(tu []byte) bool {
	var seq *av1Sequence
	key, seen := false, false
	av1OBUs(tu, func(o obu, _ []byte) bool {
		switch o.typ {
		case obuSequenceHeader:
			// The first one only: it is the one av1Config and av1Size
			// read, so a key frame always has its CodecPrivate.
			if s, ok := parseAV1Sequence(o.payload); ok && !seen {
				seq = &s
			}
			seen = true
		case obuFrame, obuFrameHeader:
			key = seq != nil && av1KeyFrameHeader(seq, o.payload)
			return false
		}
		return true
	})
	return key
}

// av1KeyFrameHeader reads the start of uncompressed_header (AV1 spec
// 5.9.2): show_existing_frame(1), frame_type(2, 0 = KEY_FRAME),
// show_frame(1). With reduced_still_picture_header every frame is a shown
// key frame.
func av1KeyFrameHeader(seq *av1Sequence, p []byte) bool {
	if seq.reducedStill {
		return true
	}
	r := bitReader{b: p}
	if r.bit() == 1 { // show_existing_frame
		return false
	}
	frameType, shown := r.bits(2), r.bit()
	return frameType == 0 && shown == 1 && !r.overrun()
}

// av1SequenceOBU finds the first sequence header OBU of a unit: all its
// bytes, its payload and its parsed fields.
func av1SequenceOBU(tu []byte) (raw, payload []byte, seq av1Sequence, found bool) {
	av1OBUs(tu, func(o obu, b []byte) bool {
		if o.typ != obuSequenceHeader {
			return true
		}
		seq, found = parseAV1Sequence(o.payload)
		raw, payload = b, o.payload
		return false
	})
	return raw, payload, seq, found
}

// av1Config builds CodecPrivate: the AV1CodecConfigurationRecord
// (AV1-ISOBMFF 2.3.3) with the key frame's sequence header OBU as its
// configOBUs. It is nil when the unit has no sequence header.
func av1Config(key []byte) []byte {
	raw, payload, s, ok := av1SequenceOBU(key)
	if !ok {
		return nil
	}
	flag := func(v bool, shift uint) byte {
		if v {
			return 1 << shift
		}
		return 0
	}
	c := []byte{
		0x81, // marker(1) = 1, version(7) = 1
		s.profile<<5 | s.level0&0x1f,
		flag(s.tier0, 7) | flag(s.highBitdepth, 6) | flag(s.twelveBit, 5) | flag(s.mono, 4) |
			flag(s.subX, 3) | flag(s.subY, 2) | s.chromaPos&0x03,
		0, // reserved(3), initial_presentation_delay_present(1) = 0, reserved(4)
	}
	if raw[0]&0x02 != 0 {
		return append(c, raw...)
	}
	// configOBUs need size fields (AV1-ISOBMFF 2.3.4); a sequence header
	// that ended its unit may have none.
	hdr := raw[:len(raw)-len(payload)]
	c = append(c, hdr[0]|0x02)
	c = append(c, hdr[1:]...)
	c = appendLEB128(c, uint64(len(payload)))
	return append(c, payload...)
}

// appendLEB128 encodes v as unsigned LEB128 (AV1 spec 4.10.5).
func appendLEB128(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// av1Size is the largest frame size of the key frame's sequence.
func av1Size(key []byte) (w, h uint64) {
	_, _, s, ok := av1SequenceOBU(key)
	if !ok {
		return 0, 0
	}
	return s.width, s.height
}
