package recording

import (
	"bytes"
	"testing"
)

// FuzzAV1 feeds temporal units to the AV1 parsing a recording's first
// key frame goes through (AV1 spec 5.3 OBUs, 5.5 sequence header, 5.9.2
// frame header start): nothing panics; a unit av1Key calls a key frame
// has a sequence header; the CodecPrivate av1Config builds is
// an AV1CodecConfigurationRecord (AV1-ISOBMFF 2.3.3) whose configOBUs are
// the unit's sequence header with a size field, parsed to the same fields.
// Seeds: temporal units of libaom encodings (after the depacketizer),
// sequence headers exercising the optional fields.
func FuzzAV1(f *testing.F) {
	f.Fuzz(func(t *testing.T, tu []byte) {
		// The writer drops a unit that is not av1Valid whatever av1Key
		// says (writer.sample), so a key frame need not be valid here.
		av1Valid(tu)
		key := av1Key(tu)
		_, _, seq, found := av1SequenceOBU(tu)
		if key && !found {
			t.Fatalf("%x: key frame without a sequence header", tu)
		}
		w, h := av1Size(tu)
		if found != (w > 0 && h > 0) {
			t.Fatalf("%x: size %dx%d with sequence header %v", tu, w, h, found)
		}
		c := av1Config(tu)
		if (c != nil) != found {
			t.Fatalf("%x: CodecPrivate %x with sequence header %v", tu, c, found)
		}
		if c == nil {
			return
		}
		if len(c) < 5 || c[0] != 0x81 || c[1]>>5 != seq.profile {
			t.Fatalf("%x: configuration record %x", tu, c)
		}
		o, ok := nextOBU(c[4:])
		if !ok || o.typ != obuSequenceHeader || c[4]&0x02 == 0 || o.size != len(c)-4 {
			t.Fatalf("%x: configOBUs %x are not one sized sequence header", tu, c[4:])
		}
		if again, ok := parseAV1Sequence(o.payload); !ok || again != seq {
			t.Fatalf("%x: configOBUs parse to %+v, not %+v", tu, again, seq)
		}
	})
}

// FuzzAV1Depacketizer feeds RTP payloads (the AV1 RTP payload format,
// section 4) to the recorder's depacketizer: it never fails nor panics,
// and what it returns is whole OBUs with size fields and no padding, or
// the one invalid OBU that makes the writer wait for a key frame. Seeds:
// pion's AV1 packets of libaom encodings, first, middle and last.
func FuzzAV1Depacketizer(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		d := newAV1Depacketizer()
		out, err := d.Unmarshal(payload)
		if err != nil {
			t.Fatalf("%x: %v", payload, err)
		}
		if bytes.Equal(out, []byte{av1BadOBU}) {
			if av1Valid(out) {
				t.Fatal("the invalid OBU is valid")
			}
			return
		}
		for rest := out; len(rest) > 0; {
			o, ok := nextOBU(rest)
			if !ok || rest[0]&0x02 == 0 || o.typ == obuPadding {
				t.Fatalf("%x: unsized, padding or broken OBU in %x", payload, out)
			}
			rest = rest[o.size:]
		}
		av1Key(out)
		av1Config(out)
	})
}
