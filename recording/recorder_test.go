package recording

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2030, 3, 4, 9, 0, 0, 0, time.UTC).UnixNano()

func newTestRecorder(t *testing.T, opts Options) (*Recorder, string) {
	t.Helper()
	dir := t.TempDir()
	opts.Logger = zerolog.Nop()
	if opts.QueueSize == 0 {
		opts.QueueSize = 1 << 14
	}
	r, err := New(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = r.Stop() })
	return r, dir
}

// checkPlayable is what every finished recording must pass: one video and
// one audio stream (as asked), a duration near want, a clean decode and a
// first video packet that is a key frame.
func checkPlayable(t *testing.T, path string, streams []string, want, tol time.Duration) probeResult {
	t.Helper()
	pr := ffprobe(t, path)
	var got []string
	for _, s := range pr.Streams {
		got = append(got, s.CodecType)
	}
	require.ElementsMatch(t, streams, got)
	requireNear(t, want, pr.duration(t), tol, "ffprobe duration")
	require.Empty(t, decodeErrors(t, path), "ffmpeg decode errors")
	if len(streams) > 0 && streams[0] == "video" {
		_, key := pr.packetTimes(t, "video")
		require.NotEmpty(t, key)
		require.True(t, key[0], "first video frame must be a key frame")
	}
	return pr
}

// TestRecordTenSeconds records 10 s of VP8 + Opus whose RTP timestamps and
// sequence numbers wrap around during the recording.
func TestRecordTenSeconds(t *testing.T) {
	t.Parallel()
	r, _ := newTestRecorder(t, Options{Room: "room-1", Teacher: "Ada", Label: "camera"})
	video, audio := newVideoSource("v", webrtc.MimeTypeVP8), newAudioSource("a")
	require.NoError(t, r.Attach(video, audio))
	require.Equal(t, 1, video.sinkCount())
	require.Positive(t, video.keyReqs.Load(), "the recorder asks for a key frame")
	pkts := avStreams(t, video, audio, t0,
		videoParams(1, 0xFFFFFFFF-90000*3, 65000), audioParams(2, 0xFFFFFFFF-48000*5, 65300))
	feed(t, pkts)
	info, err := r.Stop()
	require.NoError(t, err)
	require.Equal(t, 0, video.sinkCount(), "Stop detaches")
	require.Equal(t, []string{"VP8", "Opus"}, info.Codecs)
	require.True(t, info.Complete)
	require.Equal(t, ".webm", filepath.Ext(info.Path))
	st, err := os.Stat(info.Path)
	require.NoError(t, err)
	require.Equal(t, st.Size(), info.Size)
	require.WithinDuration(t, time.Unix(0, t0), info.Start, time.Millisecond)
	pr := checkPlayable(t, info.Path, []string{"video", "audio"}, 10*time.Second, 500*time.Millisecond)
	requireNear(t, 10*time.Second, info.Duration, 500*time.Millisecond, "Info.Duration")
	vpts, _ := pr.packetTimes(t, "video")
	require.GreaterOrEqual(t, len(vpts), 299, "every frame written (the jitter buffer keeps the last one)")
	t.Logf("10 s class: ffprobe duration %v, Info.Duration %v, %d bytes", pr.duration(t), info.Duration, info.Size)
}

// TestRecordLossAndReorder: 5% of packets lost and 5% swapped. The
// duration stays right, and no frame that depends on a lost one is
// written (ffmpeg decodes without an error).
func TestRecordLossAndReorder(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run("seed"+string(rune('0'+seed)), func(t *testing.T) {
			t.Parallel()
			r, _ := newTestRecorder(t, Options{})
			video, audio := newVideoSource("v", webrtc.MimeTypeVP8), newAudioSource("a")
			require.NoError(t, r.Attach(video, audio))
			pkts := avStreams(t, video, audio, t0, videoParams(1, 1000, 1), audioParams(2, 5000, 9))
			impaired, lost := impair(pkts, seed, 0.05, 0.05)
			require.Positive(t, lost)
			feed(t, impaired)
			info, err := r.Stop()
			require.NoError(t, err)
			pr := checkPlayable(t, info.Path, []string{"video", "audio"}, 10*time.Second, 500*time.Millisecond)
			vpts, _ := pr.packetTimes(t, "video")
			require.Less(t, len(vpts), 300, "frames after a loss are not written")
			t.Logf("seed %d: %d of %d packets lost, %d video frames written, duration %v",
				seed, lost, len(pkts), len(vpts), pr.duration(t))
		})
	}
}

// TestRecordAVSync: audio reaches the server 300 ms after the video
// captured with it. With sender reports the written timestamps line up
// (within 100 ms); without them the offset shows, which proves the check
// can fail.
func TestRecordAVSync(t *testing.T) {
	t.Parallel()
	senderClock := time.Date(2001, 5, 5, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		reports     bool
		wantOffset  time.Duration
		audioMargin time.Duration
	}{
		{"sender reports", true, 0, 100 * time.Millisecond},
		{"arrival fallback", false, 290 * time.Millisecond, 30 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, _ := newTestRecorder(t, Options{})
			video, audio := newVideoSource("v", webrtc.MimeTypeVP8), newAudioSource("a")
			if tc.reports {
				video.setSR(senderClock, 1000) // both captured at senderClock
				audio.setSR(senderClock, 5000)
			}
			require.NoError(t, r.Attach(video, audio))
			vp, ap := videoParams(1, 1000, 1), audioParams(2, 5000, 9)
			vp.delay, ap.delay = 10*time.Millisecond, 300*time.Millisecond
			vp.to, ap.to = 90, 150 // 3 s
			feed(t, avStreams(t, video, audio, t0, vp, ap))
			info, err := r.Stop()
			require.NoError(t, err)
			pr := ffprobe(t, info.Path)
			vpts, _ := pr.packetTimes(t, "video")
			apts, _ := pr.packetTimes(t, "audio")
			require.GreaterOrEqual(t, len(vpts), 89)
			// Frame i of each stream was captured at i*33.3 ms (video) and
			// i*20 ms (audio); the file starts at video frame 0.
			for i, p := range vpts {
				requireNear(t, time.Duration(i)*frame30, secs(p), 2*time.Millisecond, "video pts")
			}
			first := 0 // audio frame 0 was captured with video frame 0
			worst := time.Duration(0)
			for j, p := range apts {
				off := secs(p) - time.Duration(j+first)*20*time.Millisecond
				requireNear(t, tc.wantOffset, off, tc.audioMargin, "audio pts")
				worst = max(worst, abs(off))
			}
			t.Logf("%s: audio/video offset up to %v", tc.name, worst)
		})
	}
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// TestRecordReconnect: the teacher's connection drops at 4 s and a new
// publisher (new SSRCs, sequence numbers and timestamps) comes back at
// 6 s. The same file goes on and the two seconds show as a gap.
func TestRecordReconnect(t *testing.T) {
	t.Parallel()
	r, _ := newTestRecorder(t, Options{})
	v1, a1 := newVideoSource("v1", webrtc.MimeTypeVP8), newAudioSource("a1")
	require.NoError(t, r.Attach(v1, a1))
	vp, ap := videoParams(1, 1000, 1), audioParams(2, 5000, 9)
	vp.to, ap.to = 120, 200
	feed(t, avStreams(t, v1, a1, t0, vp, ap))

	v2, a2 := newVideoSource("v2", webrtc.MimeTypeVP8), newAudioSource("a2")
	require.NoError(t, r.Attach(v2, a2))
	require.Zero(t, v1.sinkCount(), "the old tracks are detached")
	// Frames 180.. and 300.. (6 s on), with unrelated RTP numbering; the
	// sender's capture clock restarted, so its frame 180 is at 0 again.
	vp2, ap2 := videoParams(7, 123456, 40000), audioParams(8, 999, 3)
	vp2.from, ap2.from = 180, 300
	vp2.frameNS = func(i int) int64 { return every(frame30)(i - 180) }
	ap2.frameNS = func(i int) int64 { return every(20 * time.Millisecond)(i - 300) }
	feed(t, avStreams(t, v2, a2, t0+int64(6*time.Second), vp2, ap2))
	info, err := r.Stop()
	require.NoError(t, err)
	pr := checkPlayable(t, info.Path, []string{"video", "audio"}, 10*time.Second, 500*time.Millisecond)
	vpts, _ := pr.packetTimes(t, "video")
	var gap time.Duration
	for i := 1; i < len(vpts); i++ {
		gap = max(gap, secs(vpts[i]-vpts[i-1]))
	}
	requireNear(t, 2*time.Second+frame30, gap, 50*time.Millisecond, "video gap")
	t.Logf("reconnect: duration %v, gap %v", pr.duration(t), gap)
}

// TestRecordH264 writes Matroska (H.264 is not allowed in WebM).
func TestRecordH264(t *testing.T) {
	t.Parallel()
	r, _ := newTestRecorder(t, Options{})
	video, audio := newVideoSource("v", webrtc.MimeTypeH264), newAudioSource("a")
	require.NoError(t, r.Attach(video, audio))
	v := packetize(video, h264Frames(t, testMedia.h264), &codecs.H264Payloader{}, videoParams(1, 1, 1), t0)
	a := packetize(audio, opusFrames(t, testMedia.opus), &codecs.OpusPayloader{}, audioParams(2, 2, 2), t0)
	feed(t, merge(v, a))
	info, err := r.Stop()
	require.NoError(t, err)
	require.Equal(t, ".mkv", filepath.Ext(info.Path))
	require.Equal(t, []string{"H264", "Opus"}, info.Codecs)
	checkPlayable(t, info.Path, []string{"video", "audio"}, 10*time.Second, 500*time.Millisecond)
}

// TestRecordStartsOnKeyframe: joining mid-GOP, nothing is written before
// the next key frame, and the recorder asked for one.
func TestRecordStartsOnKeyframe(t *testing.T) {
	t.Parallel()
	r, _ := newTestRecorder(t, Options{})
	video, audio := newVideoSource("v", webrtc.MimeTypeVP8), newAudioSource("a")
	require.NoError(t, r.Attach(video, audio))
	vp, ap := videoParams(1, 1000, 1), audioParams(2, 5000, 9)
	vp.from, ap.from = 10, 17 // frame 30 (1 s) is the first key frame
	feed(t, avStreams(t, video, audio, t0, vp, ap))
	info, err := r.Stop()
	require.NoError(t, err)
	require.WithinDuration(t, time.Unix(0, t0+int64(time.Second)), info.Start, time.Millisecond)
	checkPlayable(t, info.Path, []string{"video", "audio"}, 9*time.Second, 500*time.Millisecond)
}

func TestRecordNothing(t *testing.T) {
	t.Parallel()
	r, dir := newTestRecorder(t, Options{})
	require.NoError(t, r.Attach(newVideoSource("v", webrtc.MimeTypeVP8)))
	_, err := r.Stop()
	require.ErrorIs(t, err, ErrEmpty)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, ents)
	require.ErrorIs(t, r.Attach(newAudioSource("a")), ErrStopped)
}

func TestAttachErrors(t *testing.T) {
	t.Parallel()
	r, _ := newTestRecorder(t, Options{})
	tests := []struct {
		name   string
		tracks []Source
		want   error
	}{
		{"none", nil, ErrNoTracks},
		{"unsupported", []Source{newVideoSource("v", "video/H265")}, ErrUnsupportedCodec},
		{"two videos", []Source{newVideoSource("v", webrtc.MimeTypeVP8), newVideoSource("w", webrtc.MimeTypeVP8)}, ErrNoTracks},
	}
	for _, tc := range tests {
		require.ErrorIs(t, r.Attach(tc.tracks...), tc.want, tc.name)
	}
	require.NoError(t, r.Attach(newVideoSource("v", webrtc.MimeTypeVP8)))
	require.ErrorIs(t, r.Attach(newVideoSource("v2", webrtc.MimeTypeVP9)), ErrCodecChanged)
	_, err := New(t.TempDir(), Options{ID: "../etc"})
	require.ErrorIs(t, err, ErrBadID)
}

// blockingFile is a disk that stalls until released.
type blockingFile struct {
	*os.File
	release chan struct{}
	once    sync.Once
}

func (b *blockingFile) Write(p []byte) (int, error) {
	<-b.release
	return b.File.Write(p)
}

func (b *blockingFile) unblock() { b.once.Do(func() { close(b.release) }) }

// TestSlowDiskNeverBlocksDeliver: with the disk stalled, Deliver keeps
// returning at once; what does not fit the queue is dropped and counted.
func TestSlowDiskNeverBlocksDeliver(t *testing.T) {
	t.Parallel()
	bf := &blockingFile{release: make(chan struct{})}
	r, _ := newTestRecorder(t, Options{QueueSize: 64, create: func(path string) (File, error) {
		f, err := createFile(path)
		if err != nil {
			return nil, err
		}
		bf.File = f.(*os.File)
		return bf, nil
	}})
	defer bf.unblock()
	video, audio := newVideoSource("v", webrtc.MimeTypeVP8), newAudioSource("a")
	require.NoError(t, r.Attach(video, audio))
	pkts := avStreams(t, video, audio, t0, videoParams(1, 1000, 1), audioParams(2, 5000, 9))
	fed := make(chan struct{})
	go func() { defer close(fed); feed(t, pkts) }()
	require.Eventually(t, func() bool {
		select {
		case <-fed:
			return true
		default:
			return false
		}
	}, waitFor, tick, "Deliver blocked on a stalled disk")
	require.Positive(t, r.Drops())
	t.Logf("stalled disk: %d of %d packets dropped", r.Drops(), len(pkts))
	bf.unblock()
	info, err := r.Stop()
	require.NoError(t, err)
	require.Empty(t, decodeErrors(t, info.Path))
}

// fullFile fails with ENOSPC once limit bytes are written.
type fullFile struct {
	*os.File
	limit int
	n     int
}

func (f *fullFile) Write(p []byte) (int, error) {
	if f.n+len(p) > f.limit {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	f.n += len(p)
	return f.File.Write(p)
}

func TestDiskFullStopsRecording(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 1)
	r, _ := newTestRecorder(t, Options{
		OnError: func(err error) { errs <- err },
		create: func(path string) (File, error) {
			f, err := createFile(path)
			if err != nil {
				return nil, err
			}
			return &fullFile{File: f.(*os.File), limit: 300 << 10}, nil
		},
	})
	video, audio := newVideoSource("v", webrtc.MimeTypeVP8), newAudioSource("a")
	require.NoError(t, r.Attach(video, audio))
	feed(t, avStreams(t, video, audio, t0, videoParams(1, 1000, 1), audioParams(2, 5000, 9)))
	var got error
	require.Eventually(t, func() bool {
		select {
		case got = <-errs:
			return true
		default:
			return false
		}
	}, waitFor, tick)
	require.ErrorIs(t, got, ErrDiskFull)
	<-r.Done()
	require.Zero(t, video.sinkCount(), "a failed recorder leaves the class")
	info, err := r.Stop()
	require.True(t, errors.Is(err, ErrDiskFull))
	require.False(t, info.Complete)
	video.deliver(t, avStreams(t, video, audio, t0, videoParams(1, 1, 1), audioParams(2, 2, 2))[0].raw, 0)
}
