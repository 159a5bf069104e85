package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"lectern/internal/mediafile"
)

// Default clip files, relative to the repository root.
const (
	DefaultIVF = "testdata/bench/clip-720p.ivf"
	DefaultOgg = "testdata/clip.ogg"
)

// clip is the media the publisher loops.
type clip struct {
	video         []mediafile.Frame
	audio         []mediafile.Frame
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
	v, err := mediafile.LoadIVF(p)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMedia, err)
	}
	c.video, c.width, c.height = v.Frames, v.Width, v.Height
	c.fps = float64(time.Second) / float64(v.FrameDur)
	return nil
}

func loadOgg(path string) ([]mediafile.Frame, error) {
	p, err := findMedia(path)
	if err != nil {
		return nil, err
	}
	frames, err := mediafile.LoadOgg(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMedia, err)
	}
	return frames, nil
}
