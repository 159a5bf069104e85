package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Default clip files, relative to the repository root.
const (
	DefaultIVF = "testdata/bench/clip-720p.ivf"
	DefaultOgg = "testdata/clip.ogg"
)

// opusFrame is the fallback Opus packet duration when an Ogg page's
// granule position does not give one (RFC 7845 section 4).
const opusFrame = 20 * time.Millisecond

// frame is one encoded video frame or Opus packet and how long it lasts.
type frame struct {
	data []byte
	key  bool
	dur  time.Duration
}

// clip is the media the publisher loops.
type clip struct {
	video         []frame
	audio         []frame
	width, height int
	fps           float64
}

// findMedia returns path as given when it exists, else the first match
// in the working directory's parents: `go test` runs in the package
// directory and an operator may run the tool anywhere in the checkout.
func findMedia(path string) (string, error) {
	if _, err := os.Stat(path); err == nil || filepath.IsAbs(path) {
		return path, err
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 8 {
		p := filepath.Join(dir, path)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("%w: %s not found here or in a parent directory (use --ivf/--ogg)", ErrMedia, path)
}

func loadClip(ivfPath, oggPath string) (*clip, error) {
	c := &clip{}
	if err := c.loadIVF(ivfPath); err != nil {
		return nil, err
	}
	if oggPath == "" {
		return c, nil
	}
	var err error
	if c.audio, err = loadOgg(oggPath); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *clip) loadIVF(path string) error {
	p, err := findMedia(path)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMedia, err)
	}
	r, hdr, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrMedia, path, err)
	}
	if hdr.FourCC != "VP80" || hdr.TimebaseDenominator == 0 || hdr.TimebaseNumerator == 0 {
		return fmt.Errorf("%w: %s: not VP8, or no timebase", ErrMedia, path)
	}
	// ffmpeg writes one timebase tick per frame.
	dur := time.Second * time.Duration(hdr.TimebaseNumerator) / time.Duration(hdr.TimebaseDenominator)
	c.width, c.height, c.fps = int(hdr.Width), int(hdr.Height), float64(time.Second)/float64(dur)
	for range 1 << 20 {
		b, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrMedia, path, err)
		}
		// VP8 frame tag, RFC 6386 section 9.1: bit 0 clear is a key frame.
		c.video = append(c.video, frame{data: b, key: len(b) > 0 && b[0]&1 == 0, dur: dur})
	}
	if len(c.video) == 0 || !c.video[0].key {
		return fmt.Errorf("%w: %s: no frames, or the first is not a keyframe", ErrMedia, path)
	}
	return nil
}

func loadOgg(path string) ([]frame, error) {
	p, err := findMedia(path)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMedia, err)
	}
	r, _, err := oggreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMedia, path, err)
	}
	var frames []frame
	var granule uint64
	for range 1 << 20 {
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
		frames = append(frames, frame{data: b, dur: opusDuration(granule, h.GranulePosition)})
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
