package recording

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

// av1Encoders are the AV1 encoders of Debian's ffmpeg the tests use:
// libaom in real-time mode (what browsers send: one frame per temporal
// unit) and SVT-AV1 in random-access mode, whose temporal units also
// carry hidden frames shown later.
var av1Encoders = []struct {
	name string
	args []string
}{
	{"libaom realtime", []string{"-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-row-mt", "1", "-g", "30", "-b:v", "300k"}},
	{"SVT-AV1 hidden frames", []string{"-c:v", "libsvtav1", "-preset", "12", "-g", "30", "-b:v", "300k"}},
}

// makeAV1 encodes 3 s of 320x240 30 fps test pattern into an IVF file.
func makeAV1(t *testing.T, encoder []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "av1.ivf")
	args := append([]string{"-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "3"}, encoder...)
	out, err := exec.Command("ffmpeg", append(args, path)...).CombinedOutput()
	require.NoError(t, err, "ffmpeg AV1 encode: %s", out)
	return path
}

// av1Streams packetizes the IVF's temporal units with pion's AV1 payloader
// (the AV1 RTP payload format) and 3 s of Opus.
func av1Streams(t *testing.T, video, audio *testSource, ivf string) (pkts []timed, frames int) {
	tus := vp8Frames(t, ivf) // IVF framing is the same for AV1
	v := packetize(video, tus, &codecs.AV1Payloader{}, videoParams(1, 7, 7), t0)
	ap := audioParams(2, 9, 9)
	ap.to = 150
	a := packetize(audio, opusFrames(t, testMedia.opus), &codecs.OpusPayloader{}, ap, t0)
	return merge(v, a), len(tus)
}

// extradata is a stream's codec private data as ffprobe reports it.
func extradata(t *testing.T, path string) []byte {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_data",
		"-select_streams", "v:0", path).Output()
	require.NoError(t, err, "ffprobe %s", path)
	var res struct {
		Streams []struct {
			Extradata string `json:"extradata"`
		} `json:"streams"`
	}
	require.NoError(t, json.Unmarshal(out, &res))
	require.Len(t, res.Streams, 1)
	var b []byte
	for _, line := range strings.Split(res.Streams[0].Extradata, "\n") {
		_, rest, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		hexPart, _, _ := strings.Cut(rest, "  ")
		d, err := hex.DecodeString(strings.ReplaceAll(hexPart, " ", ""))
		require.NoError(t, err)
		b = append(b, d...)
	}
	return b
}

// sourceKeyMS are the times (ms) of a stream's key frames as ffmpeg's AV1
// parser finds them.
func sourceKeyMS(t *testing.T, path string) []int64 {
	t.Helper()
	pts, key := ffprobe(t, path).packetTimes(t, "video")
	var out []int64
	for i, k := range key {
		if k {
			out = append(out, int64(math.Round(pts[i]*1000)))
		}
	}
	return out
}

// blockKeyMS are the times (ms) of the video SimpleBlocks flagged as key
// frames (ffprobe reports the parser's view, not the flag).
func blockKeyMS(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	require.NoError(t, err)
	var out []int64
	sc := scanner{r: f, size: st.Size(), scale: 1_000_000}
	sc.onBlock = func(_ int, track uint64, tc int64, key bool) {
		if track == 1 && key {
			out = append(out, tc)
		}
	}
	require.NoError(t, sc.scan())
	return out
}

// TestRecordAV1 records AV1 + Opus into WebM. ffmpeg is the reference:
// the file decodes cleanly with the right duration, every frame is there,
// the key frames are those of the source, and CodecPrivate is
// byte-identical to what ffmpeg's own Matroska muxer writes for the
// same stream.
func TestRecordAV1(t *testing.T) {
	t.Parallel()
	for _, enc := range av1Encoders {
		t.Run(enc.name, func(t *testing.T) {
			t.Parallel()
			ivf := makeAV1(t, enc.args)
			r, _ := newTestRecorder(t, Options{})
			video, audio := newVideoSource("v", webrtc.MimeTypeAV1), newAudioSource("a")
			require.NoError(t, r.Attach(video, audio))
			pkts, frames := av1Streams(t, video, audio, ivf)
			feed(t, pkts)
			info, err := r.Stop()
			require.NoError(t, err)
			require.Equal(t, ".webm", filepath.Ext(info.Path))
			require.Equal(t, []string{"AV1", "Opus"}, info.Codecs)
			pr := checkPlayable(t, info.Path, []string{"video", "audio"}, 3*time.Second, 500*time.Millisecond)
			for _, s := range pr.Streams {
				if s.CodecType == "video" {
					require.Equal(t, "av1", s.CodecName)
				}
			}
			vpts, _ := pr.packetTimes(t, "video")
			require.GreaterOrEqual(t, len(vpts), frames-1, "every frame written (the jitter buffer keeps the last one)")

			ref := filepath.Join(t.TempDir(), "ref.webm")
			out, err := exec.Command("ffmpeg", "-v", "error", "-i", ivf, "-c", "copy", ref).CombinedOutput()
			require.NoError(t, err, "ffmpeg remux: %s", out)
			require.Equal(t, sourceKeyMS(t, ivf), blockKeyMS(t, info.Path), "key frames")
			want := extradata(t, ref)
			require.Greater(t, len(want), 4)
			require.Equal(t, want, extradata(t, info.Path), "CodecPrivate (av1C + sequence header)")
			t.Logf("%s: %d frames, duration %v, %d bytes", enc.name, len(vpts), pr.duration(t), info.Size)
		})
	}
}

// TestRecordAV1LossAndReorder: with 5% of packets lost and 5% swapped no
// frame that depends on a lost one is written, so ffmpeg decodes without
// an error.
func TestRecordAV1LossAndReorder(t *testing.T) {
	t.Parallel()
	ivf := makeAV1(t, av1Encoders[0].args)
	for _, seed := range []uint64{1, 2} {
		t.Run("seed"+string(rune('0'+seed)), func(t *testing.T) {
			t.Parallel()
			r, _ := newTestRecorder(t, Options{})
			video, audio := newVideoSource("v", webrtc.MimeTypeAV1), newAudioSource("a")
			require.NoError(t, r.Attach(video, audio))
			pkts, frames := av1Streams(t, video, audio, ivf)
			impaired, lost := impair(pkts, seed, 0.05, 0.05)
			require.Positive(t, lost)
			feed(t, impaired)
			info, err := r.Stop()
			require.NoError(t, err)
			pr := checkPlayable(t, info.Path, []string{"video", "audio"}, 3*time.Second, 500*time.Millisecond)
			vpts, _ := pr.packetTimes(t, "video")
			require.Less(t, len(vpts), frames, "frames after a loss are not written")
			t.Logf("seed %d: %d packets lost, %d of %d frames written", seed, lost, len(vpts), frames)
		})
	}
}

// tuOBUs lists a temporal unit's OBUs as type and payload.
func tuOBUs(t *testing.T, tu []byte) (types []int, payloads [][]byte) {
	t.Helper()
	require.True(t, av1OBUs(tu, func(o obu, _ []byte) bool {
		types, payloads = append(types, o.typ), append(payloads, o.payload)
		return true
	}))
	return types, payloads
}

// TestAV1Depacketizer: temporal units survive pion's payloader and the
// depacketizer with the same OBUs, minus temporal delimiters, every OBU
// with a size field (the Matroska mapping).
func TestAV1Depacketizer(t *testing.T) {
	t.Parallel()
	tus := vp8Frames(t, makeAV1(t, av1Encoders[0].args))
	pl := &codecs.AV1Payloader{}
	d := newAV1Depacketizer()
	keys := 0
	for i, tu := range tus {
		var got []byte
		for _, p := range pl.Payload(1200, tu) {
			b, err := d.Unmarshal(p)
			require.NoError(t, err)
			got = append(got, b...)
		}
		wantTypes, wantPayloads := tuOBUs(t, tu)
		require.Equal(t, 2, wantTypes[0], "the source starts with a temporal delimiter")
		gotTypes, gotPayloads := tuOBUs(t, got)
		require.Equal(t, wantTypes[1:], gotTypes, "unit %d", i)
		require.Equal(t, wantPayloads[1:], gotPayloads, "unit %d", i)
		require.True(t, av1OBUs(got, func(_ obu, raw []byte) bool {
			require.NotZero(t, raw[0]&0x02, "obu_has_size_field")
			return true
		}))
		require.True(t, av1Valid(got))
		if av1Key(got) {
			keys++
			require.NotNil(t, av1Config(got))
		}
	}
	require.Equal(t, 3, keys, "3 s with a key frame every 30 frames")
}

// TestAV1BadInput: malformed payloads give a frame the writer rejects,
// never an error that would hide the loss or a panic; truncated units
// are never key frames and never crash the parsers.
func TestAV1BadInput(t *testing.T) {
	t.Parallel()
	payloads := []struct {
		name    string
		payload []byte
	}{
		{"aggregation header only", []byte{0x00}},
		{"length beyond payload", []byte{0x00, 0x10, 0x30, 0x00}},
		{"unterminated length", []byte{0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"forbidden bit", []byte{0x10, 0xb2, 0x00}},
		{"truncated extension header", []byte{0x10, 0x34}},
		{"W counts more OBUs than present", []byte{0x30, 0x01, 0x30}},
	}
	for _, tc := range payloads {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := newAV1Depacketizer().Unmarshal(tc.payload)
			require.NoError(t, err)
			require.False(t, av1Valid(out))
			require.False(t, av1Key(out))
		})
	}
	tus := vp8Frames(t, makeAV1(t, av1Encoders[0].args))
	key := tus[0][2:] // without the temporal delimiter (12 00)
	require.True(t, av1Key(key))
	for n := range len(key) {
		av1Valid(key[:n])
		av1Key(key[:n])
		av1Config(key[:n])
		av1Size(key[:n])
	}
}

// bitWriter writes big-endian bit fields (the AV1 spec's f(n)).
type bitWriter struct {
	b []byte
	n int
}

func (w *bitWriter) put(v uint64, n int) *bitWriter {
	for i := n - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (7 - w.n%8)
		w.n++
	}
	return w
}

// obuBytes wraps a payload in an OBU header with a size field.
func obuBytes(typ int, payload []byte) []byte {
	return append(appendLEB128([]byte{byte(typ<<3) | 0x02}, uint64(len(payload))), payload...)
}

// TestAV1SequenceHeader: the configuration record and size from sequence
// headers that exercise the optional parts of sequence_header_obu (AV1
// spec 5.5) which the encoders above do not write.
func TestAV1SequenceHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		seq    func(w *bitWriter)
		frame  []byte // uncompressed_header start
		record [3]byte
		w, h   uint64
		key    bool
	}{
		{"reduced still picture, monochrome", func(w *bitWriter) {
			w.put(0, 3).put(1, 1).put(1, 1).put(5, 5)           // profile 0, still, reduced, level 5
			w.put(8, 4).put(8, 4).put(319, 9).put(239, 9)       // frame size 320x240
			w.put(0, 3).put(0, 3)                               // tools, superres/cdef/restoration
			w.put(0, 1).put(1, 1).put(0, 1).put(0, 1).put(0, 1) // 8 bit, mono, no description, range, uv delta
		}, []byte{0xff}, [3]byte{0x81, 0x05, 0x1c}, 320, 240, true},
		{"profile 2 12-bit 4:2:2, timing and decoder model, two operating points", func(w *bitWriter) {
			w.put(2, 3).put(0, 1).put(0, 1)                              // profile 2
			w.put(1, 1).put(1001, 32).put(60000, 32).put(1, 1).put(1, 1) // timing info, uvlc 0
			w.put(1, 1).put(9, 5).put(90000, 32).put(4, 5).put(4, 5)     // decoder model, 10-bit delays
			w.put(1, 1).put(1, 5)                                        // initial delay present, 2 points
			w.put(0x103, 12).put(13, 5).put(1, 1).put(1, 1).put(500, 10).put(500, 10).put(0, 1).put(1, 1).put(3, 4)
			w.put(0x101, 12).put(3, 5).put(0, 1).put(0, 1) // level 3: no tier bit
			w.put(10, 4).put(10, 4).put(1919, 11).put(1079, 11)
			w.put(1, 1).put(0x7f, 7)                   // frame id numbers
			w.put(0, 3).put(0, 4).put(1, 1).put(3, 2)  // order hint, jnt_comp, ref_frame_mvs
			w.put(0, 1).put(1, 1).put(0, 1).put(1, 1)  // screen content forced, integer mv forced
			w.put(6, 3).put(7, 3)                      // order hint bits, superres/cdef/restoration
			w.put(1, 1).put(1, 1).put(0, 1)            // high bit depth, twelve bit, not mono
			w.put(1, 1).put(9, 8).put(16, 8).put(9, 8) // BT.2020 PQ
			w.put(1, 1).put(1, 1).put(0, 1).put(0, 1)  // range, subsampling 1 0, uv delta
		}, []byte{0b0_01_1_0000}, [3]byte{0x81, 0x4d, 0xe8}, 1920, 1080, false},
		{"profile 1 4:4:4, screen content tools chosen per frame", func(w *bitWriter) {
			w.put(1, 3).put(0, 1).put(0, 1)
			w.put(0, 1).put(0, 1).put(0, 5)  // no timing, no initial delay, 1 point
			w.put(0, 12).put(8, 5).put(0, 1) // level 8, tier 0
			w.put(11, 4).put(11, 4).put(3839, 12).put(2159, 12)
			w.put(0, 1).put(0, 3).put(0, 4).put(0, 1) // no frame ids, no order hint
			w.put(1, 1).put(1, 1)                     // choose screen content, choose integer mv
			w.put(0, 3)
			w.put(0, 1).put(0, 1).put(1, 1).put(0, 1) // 8 bit, no description, range, uv delta
		}, []byte{0b0_00_1_0000}, [3]byte{0x81, 0x28, 0x00}, 3840, 2160, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var w bitWriter
			tc.seq(&w)
			seq := obuBytes(obuSequenceHeader, w.b)
			tu := append(append([]byte(nil), seq...), obuBytes(obuFrameHeader, tc.frame)...)
			require.True(t, av1Valid(tu))
			require.Equal(t, append(append(tc.record[:], 0), seq...), av1Config(tu))
			sizeless := append([]byte{obuSequenceHeader << 3}, w.b...) // last OBU of a Block
			require.Equal(t, append(append(tc.record[:], 0), seq...), av1Config(sizeless), "configOBUs get a size field")
			width, height := av1Size(tu)
			require.Equal(t, [2]uint64{tc.w, tc.h}, [2]uint64{width, height})
			require.Equal(t, tc.key, av1Key(tu))
			require.False(t, av1Key(obuBytes(obuFrameHeader, tc.frame)), "no key frame without a sequence header")
			_, ok := parseAV1Sequence(w.b[:len(w.b)/2])
			require.False(t, ok, "truncated")
		})
	}
}
