// Package mediafile reads the media files that Lectern's Go clients publish: a
// VP8 IVF file and an Ogg Opus file, loaded whole into memory so a
// publisher can loop them without touching the disk.
package mediafile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// ErrMedia: a file is missing, unreadable or not what it should be.
var ErrMedia = errors.New("mediafile: bad media file")

// opusFrame is the fallback Opus packet duration when an Ogg page's
// granule position does not give one (RFC 7845 section 4).
const opusFrame = 20 * time.Millisecond

// maxFrames bounds a file's frames, so a corrupt one cannot loop forever.
const maxFrames = 1 << 20

// Frame is one encoded video frame or Opus packet and how long it lasts.
type Frame struct {
	Data []byte
	Key  bool // a VP8 key frame (video only)
	Dur  time.Duration
}

// Video is a VP8 clip.
type Video struct {
	Frames        []Frame
	Width, Height int
	FrameDur      time.Duration
}

// LoadIVF reads a VP8 IVF file whose first frame is a key frame.
func LoadIVF(path string) (Video, error) {
	var v Video
	data, err := os.ReadFile(path)
	if err != nil {
		return v, fmt.Errorf("%w: %w", ErrMedia, err)
	}
	r, hdr, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return v, fmt.Errorf("%w: %s: %w", ErrMedia, path, err)
	}
	if hdr.FourCC != "VP80" || hdr.TimebaseDenominator == 0 || hdr.TimebaseNumerator == 0 {
		return v, fmt.Errorf("%w: %s: not VP8, or no timebase", ErrMedia, path)
	}
	// One tick of the IVF timebase; ffmpeg writes one tick per frame.
	v.FrameDur = time.Second * time.Duration(hdr.TimebaseNumerator) / time.Duration(hdr.TimebaseDenominator)
	v.Width, v.Height = int(hdr.Width), int(hdr.Height)
	for range maxFrames {
		b, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return v, fmt.Errorf("%w: %s: %w", ErrMedia, path, err)
		}
		// VP8 frame tag, RFC 6386 section 9.1: bit 0 clear is a key frame.
		v.Frames = append(v.Frames, Frame{Data: b, Key: len(b) > 0 && b[0]&1 == 0, Dur: v.FrameDur})
	}
	if len(v.Frames) == 0 || !v.Frames[0].Key {
		return v, fmt.Errorf("%w: %s: no frames, or the first is not a key frame", ErrMedia, path)
	}
	return v, nil
}

// LoadOgg reads an Ogg Opus file with one packet per page.
func LoadOgg(path string) ([]Frame, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMedia, err)
	}
	r, _, err := oggreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMedia, path, err)
	}
	var frames []Frame
	var granule uint64
	for range maxFrames {
		b, h, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMedia, path, err)
		}
		// The two header pages (RFC 7845 section 5) carry no audio.
		if len(b) == 0 || bytes.HasPrefix(b, []byte("OpusHead")) || bytes.HasPrefix(b, []byte("OpusTags")) {
			continue
		}
		frames = append(frames, Frame{Data: b, Dur: opusDuration(granule, h.GranulePosition)})
		granule = h.GranulePosition
	}
	if len(frames) == 0 {
		return nil, fmt.Errorf("%w: %s: no packets", ErrMedia, path)
	}
	return frames, nil
}

// opusDuration is the time between two pages' granule positions, which
// count 48 kHz samples (RFC 7845 section 4); the first page also counts
// the pre-skip, so implausible values fall back to one 20 ms frame.
func opusDuration(prev, cur uint64) time.Duration {
	if cur <= prev || prev == 0 {
		return opusFrame
	}
	d := time.Duration(cur-prev) * time.Second / 48000
	if d < 2500*time.Microsecond || d > 120*time.Millisecond {
		return opusFrame
	}
	return d
}
