package recording

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/rs/zerolog"
)

// fuzzVideo are the video codecs FuzzRecordRTP picks from by its first
// byte, in supportedCodecs order.
var fuzzVideo = []string{"video/VP8", "video/VP9", "video/AV1", "video/H264"}

// FuzzRecordRTP records a publisher's hostile video: RTP packets whose
// payloads are fuzzed (each a 2-byte length, a flags byte and the
// payload; flags bit 0 is the marker, bit 1 starts a new frame), through
// a real Recorder: pion's sample builder, the depacketizers, the checks
// of each frame and the Matroska muxer. Nothing panics, Stop returns, and
// the file it wrote is complete: Repair finds nothing to cut (or, with
// no key frame, there is no file: ErrEmpty). Seeds: the
// packets of short libvpx, libaom and x264 encodings, from the key frame.
func FuzzRecordRTP(f *testing.F) {
	dir := fuzzDir(f)
	f.Fuzz(func(t *testing.T, codec byte, data []byte) {
		r, err := New(dir, Options{ID: "fuzz", Logger: zerolog.Nop(), CuesSpace: 512})
		if err != nil {
			t.Fatal(err)
		}
		video := newVideoSource("v", fuzzVideo[int(codec)%len(fuzzVideo)])
		if err := r.Attach(video); err != nil {
			t.Fatal(err)
		}
		arrival := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
		h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 1, SequenceNumber: 65500, Timestamp: 1000}
		for len(data) >= 3 {
			n := min(int(binary.BigEndian.Uint16(data)), len(data)-3, 1200)
			flags, payload := data[2], data[3:3+n]
			data = data[3+n:]
			if flags&2 != 0 {
				h.Timestamp += 3000
				arrival += int64(time.Second / 30)
			}
			h.Marker = flags&1 != 0
			raw, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			video.deliver(t, raw, arrival)
			h.SequenceNumber++
		}
		info, err := r.Stop()
		if errors.Is(err, ErrEmpty) {
			return // no key frame: nothing recorded
		}
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
		defer func() { _ = os.Remove(info.Path) }()
		res, err := Repair(info.Path)
		if err != nil || res.Truncated != 0 {
			t.Fatalf("the recording is not complete: %+v, %v", res, err)
		}
	})
}
