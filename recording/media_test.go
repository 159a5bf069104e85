package recording

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/stretchr/testify/require"

	"lectern/sfu"
)

const (
	waitFor = 20 * time.Second
	tick    = 10 * time.Millisecond
)

// testSource is a published track for the recorder: it implements Source
// and hands real RTP packets (made from encoded media) to its sinks with
// chosen arrival times.
type testSource struct {
	id      sfu.TrackID
	kind    webrtc.RTPCodecType
	codec   webrtc.RTPCodecParameters
	keyReqs atomic.Int64

	mu    sync.Mutex
	sinks []sfu.Sink
	sr    *senderReport
}

func newVideoSource(id string, mime string) *testSource {
	return &testSource{id: sfu.TrackID(id), kind: webrtc.RTPCodecTypeVideo,
		codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}}}
}

func newAudioSource(id string) *testSource {
	return &testSource{id: sfu.TrackID(id), kind: webrtc.RTPCodecTypeAudio,
		codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}}}
}

func (s *testSource) ID() sfu.TrackID                  { return s.id }
func (s *testSource) Kind() webrtc.RTPCodecType        { return s.kind }
func (s *testSource) Codec() webrtc.RTPCodecParameters { return s.codec }
func (s *testSource) RequestKeyframe()                 { s.keyReqs.Add(1) }
func (s *testSource) AddSink(k sfu.Sink)               { s.mu.Lock(); s.sinks = append(s.sinks, k); s.mu.Unlock() }
func (s *testSource) setSR(ntp time.Time, ts uint32) {
	s.mu.Lock()
	s.sr = &senderReport{ntp: ntp, rtpTS: ts, ok: true}
	s.mu.Unlock()
}
func (s *testSource) sinkCount() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.sinks) }
func (s *testSource) RemoveSink(k sfu.Sink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.sinks {
		if x == k {
			s.sinks = append(s.sinks[:i:i], s.sinks[i+1:]...)
			return
		}
	}
}

func (s *testSource) SenderReport() (time.Time, uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sr == nil {
		return time.Time{}, 0, false
	}
	return s.sr.ntp, s.sr.rtpTS, true
}

// deliver hands one packet to the sinks with the given arrival (unix ns);
// arrival 0 means the sink stamps it (the Deliver path).
func (s *testSource) deliver(t testing.TB, raw []byte, arrival int64) {
	p, err := sfu.NewPacket(raw, sfu.IsKeyframe(s.codec.MimeType, rtpPayload(raw)))
	require.NoError(t, err)
	s.mu.Lock()
	sinks := append([]sfu.Sink(nil), s.sinks...)
	s.mu.Unlock()
	for _, k := range sinks {
		if in, ok := k.(*input); ok && arrival != 0 {
			in.deliver(p, arrival)
		} else {
			k.Deliver(p)
		}
	}
	p.Release()
}

func rtpPayload(raw []byte) []byte {
	var p rtp.Packet
	if p.Unmarshal(raw) != nil {
		return nil
	}
	return p.Payload
}

// timed is one RTP packet of a stream: its source, bytes and capture time
// (ns from the stream's start) and when it reaches the server.
type timed struct {
	src     *testSource
	raw     []byte
	capture int64
	arrival int64
}

// streamParams place a stream's packets in time.
type streamParams struct {
	ssrc    uint32
	tsBase  uint32
	seqBase uint16
	rate    int64
	frameNS func(i int) int64 // capture time of frame i
	delay   time.Duration     // network delay to the server
	from    int               // first frame
	to      int               // after the last frame
}

// packetize turns frames into RTP packets (RFC 3550 headers; payloads from
// pion's payloaders), timestamped from their capture times.
func packetize(src *testSource, frames [][]byte, pl rtp.Payloader, sp streamParams, base int64) []timed {
	var out []timed
	seq := sp.seqBase
	to := min(sp.to, len(frames))
	for i := sp.from; i < to; i++ {
		capture := sp.frameNS(i)
		ts := sp.tsBase + uint32(capture*sp.rate/int64(time.Second))
		payloads := pl.Payload(1200, frames[i])
		for j, pay := range payloads {
			raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: sp.ssrc,
				SequenceNumber: seq, Timestamp: ts, Marker: j == len(payloads)-1}, Payload: pay}).Marshal()
			if err != nil {
				panic(err)
			}
			seq++
			out = append(out, timed{src: src, raw: raw, capture: capture, arrival: base + capture + int64(sp.delay)})
		}
	}
	return out
}

// merge orders packets of several streams by arrival.
func merge(streams ...[]timed) []timed {
	var all []timed
	for _, s := range streams {
		all = append(all, s...)
	}
	sortStable(all)
	return all
}

func sortStable(all []timed) {
	for i := 1; i < len(all); i++ { // insertion sort: inputs are nearly sorted
		for j := i; j > 0 && all[j].arrival < all[j-1].arrival; j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
}

// impair drops a share of packets and swaps neighbours, seeded so a
// failure can be replayed.
func impair(in []timed, seed uint64, loss, reorder float64) (out []timed, lost int) {
	r := rand.New(rand.NewPCG(seed, 1))
	for _, p := range in {
		if r.Float64() < loss {
			lost++
			continue
		}
		out = append(out, p)
	}
	for i := 0; i+1 < len(out); i++ {
		if r.Float64() < reorder {
			out[i], out[i+1] = out[i+1], out[i]
			i++
		}
	}
	return out, lost
}

func feed(t testing.TB, pkts []timed) {
	for _, p := range pkts {
		p.src.deliver(t, p.raw, p.arrival)
	}
}

// vp8Frames reads an IVF file's frames.
func vp8Frames(t testing.TB, path string) [][]byte {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	r, _, err := ivfreader.NewWith(f)
	require.NoError(t, err)
	var out [][]byte
	for {
		fr, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, fr)
	}
}

// h264Frames groups an Annex B stream's NAL units into access units: a
// new one starts at each slice after the first (SPS and PPS go with the
// IDR slice that follows them).
func h264Frames(t testing.TB, path string) [][]byte {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	r, err := h264reader.NewReader(f)
	require.NoError(t, err)
	var out [][]byte
	var cur []byte
	slice := false
	for {
		n, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			return append(out, cur)
		}
		require.NoError(t, err)
		isSlice := n.UnitType == h264reader.NalUnitTypeCodedSliceIdr || n.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr
		if slice && (isSlice || n.UnitType == h264reader.NalUnitTypeSPS) {
			out, cur, slice = append(out, cur), nil, false
		}
		cur = append(append(cur, 0, 0, 0, 1), n.Data...)
		slice = slice || isSlice
	}
}

// opusFrames reads the Opus packets of an Ogg file (RFC 3533 pages, lacing
// values; RFC 7845: the first two packets are headers).
func opusFrames(t testing.TB, path string) [][]byte {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var pkts [][]byte
	var cur []byte
	for len(b) >= 27 && bytes.Equal(b[:4], []byte("OggS")) {
		nseg := int(b[26])
		lacing := b[27 : 27+nseg]
		data := b[27+nseg:]
		for _, l := range lacing {
			cur = append(cur, data[:l]...)
			data = data[l:]
			if l < 255 {
				pkts, cur = append(pkts, cur), nil
			}
		}
		b = data
	}
	require.Greater(t, len(pkts), 2)
	return pkts[2:]
}

func every(d time.Duration) func(int) int64 { return func(i int) int64 { return int64(i) * int64(d) } }

const frame30 = time.Second / 30

// avStreams makes the camera (VP8) and microphone streams of a 10 s class.
func avStreams(t testing.TB, video, audio *testSource, base int64, vp, ap streamParams) []timed {
	v := packetize(video, vp8Frames(t, testMedia.vp8GOP30), &codecs.VP8Payloader{EnablePictureID: true}, vp, base)
	a := packetize(audio, opusFrames(t, testMedia.opus), &codecs.OpusPayloader{}, ap, base)
	return merge(v, a)
}

func videoParams(ssrc uint32, tsBase uint32, seq uint16) streamParams {
	return streamParams{ssrc: ssrc, tsBase: tsBase, seqBase: seq, rate: 90000, frameNS: every(frame30), to: 1 << 30}
}

func audioParams(ssrc uint32, tsBase uint32, seq uint16) streamParams {
	return streamParams{ssrc: ssrc, tsBase: tsBase, seqBase: seq, rate: 48000, frameNS: every(20 * time.Millisecond), to: 1 << 30}
}

// probeResult is the part of ffprobe's JSON the tests read.
type probeResult struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
	Packets []struct {
		StreamIndex int    `json:"stream_index"`
		PTS         string `json:"pts_time"`
		Flags       string `json:"flags"`
	} `json:"packets"`
}

func (p probeResult) duration(t testing.TB) time.Duration {
	d, err := strconv.ParseFloat(p.Format.Duration, 64)
	require.NoError(t, err, "ffprobe duration %q", p.Format.Duration)
	return time.Duration(d * float64(time.Second))
}

// packetTimes are the pts (s) and key flags of one stream's packets.
func (p probeResult) packetTimes(t testing.TB, codecType string) (pts []float64, key []bool) {
	for _, pk := range p.Packets {
		if p.Streams[pk.StreamIndex].CodecType != codecType {
			continue
		}
		v, err := strconv.ParseFloat(pk.PTS, 64)
		require.NoError(t, err)
		pts = append(pts, v)
		key = append(key, len(pk.Flags) > 0 && pk.Flags[0] == 'K')
	}
	return pts, key
}

// ffprobe runs Debian's ffprobe; a missing ffprobe fails the test.
func ffprobe(t testing.TB, path string) probeResult {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_format",
		"-show_entries", "packet=stream_index,pts_time,flags", "-show_packets", path).Output()
	require.NoError(t, err, "ffprobe %s", path)
	var res probeResult
	require.NoError(t, json.Unmarshal(out, &res))
	return res
}

// decodeErrors decodes the whole file with ffmpeg and returns what it
// reported at level error.
func decodeErrors(t testing.TB, path string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", "-v", "error", "-i", path, "-enc_time_base", "-1", "-f", "null", "-")
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), "ffmpeg: %s", stderr.String())
	return stderr.String()
}

func requireNear(t testing.TB, want, got, tol time.Duration, what string) {
	t.Helper()
	d := got - want
	require.True(t, d <= tol && d >= -tol, "%s: want %v ± %v, got %v", what, want, tol, got)
}
