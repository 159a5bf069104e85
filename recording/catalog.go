package recording

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"lectern/sfu"
)

// RecordingID names one recording; it is also the base name of its file
// and of its catalog entry, so it is restricted to a safe alphabet.
type RecordingID string

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Valid reports whether id is usable as a file name.
func (id RecordingID) Valid() bool { return idPattern.MatchString(string(id)) }

// NewID returns a random recording ID.
func NewID() RecordingID {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return RecordingID(hex.EncodeToString(b[:]))
}

// Info describes one recording. It is what the catalog stores and what
// Stop returns.
type Info struct {
	ID       RecordingID   `json:"id"`
	Room     sfu.RoomID    `json:"room"`
	Teacher  string        `json:"teacher"`
	Label    string        `json:"label,omitempty"` // e.g. "camera", "screen"
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration"`
	Size     int64         `json:"size"`
	Codecs   []string      `json:"codecs"`
	Path     string        `json:"path"`
	// Complete is false while the recording is written and after a crash,
	// until Catalog.Recover repairs the file.
	Complete bool `json:"complete"`
}

// Catalog keeps one JSON file per recording in a directory, so it survives
// restarts. Each entry is written atomically (temporary file, fsync,
// rename), so a crash leaves the old or the new entry, never half of one.
type Catalog struct {
	dir string
	mu  sync.Mutex // serialises writers; readers see whole files anyway
}

// OpenCatalog opens (creating if needed) the catalog in dir.
func OpenCatalog(dir string) (*Catalog, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("recording: catalog dir: %w", err)
	}
	return &Catalog{dir: dir}, nil
}

func (c *Catalog) entryPath(id RecordingID) string {
	return filepath.Join(c.dir, string(id)+".json")
}

// Put stores info, replacing any entry with the same ID.
func (c *Catalog) Put(info Info) error {
	if !info.ID.Valid() {
		return ErrBadID
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("recording: encode %s: %w", info.ID, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return writeFileAtomic(c.entryPath(info.ID), b)
}

// Get returns the entry id, or ErrNotFound.
func (c *Catalog) Get(id RecordingID) (Info, error) {
	if !id.Valid() {
		return Info{}, ErrBadID
	}
	b, err := os.ReadFile(c.entryPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, ErrNotFound
	}
	if err != nil {
		return Info{}, fmt.Errorf("recording: read %s: %w", id, err)
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return Info{}, fmt.Errorf("%w: catalog entry %s: %v", ErrCorrupt, id, err)
	}
	return info, nil
}

// List returns every entry, newest first. Unreadable entries are skipped
// and reported in the joined error, so one bad file hides no other.
func (c *Catalog) List() ([]Info, error) {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, fmt.Errorf("recording: list catalog: %w", err)
	}
	var out []Info
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		info, err := c.Get(RecordingID(strings.TrimSuffix(name, ".json")))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.After(out[j].Start) })
	return out, errors.Join(errs...)
}

// Delete removes the entry id and its media file.
func (c *Catalog) Delete(id RecordingID) error {
	info, err := c.Get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if info.Path != "" {
		if err := os.Remove(info.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("recording: delete %s: %w", id, err)
		}
	}
	if err := os.Remove(c.entryPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("recording: delete %s: %w", id, err)
	}
	return syncDir(c.dir)
}

// Recover repairs the files of entries left incomplete by a crash (see
// Repair) and marks them complete with their real duration and size. It is
// meant to run once at startup, before any recorder starts.
func (c *Catalog) Recover() ([]Info, error) {
	all, err := c.List()
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	var fixed []Info
	for _, info := range all {
		if info.Complete {
			continue
		}
		res, err := Repair(info.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("recording: recover %s: %w", info.ID, err))
			continue
		}
		info.Duration, info.Size, info.Complete = res.Duration, res.Size, true
		if err := c.Put(info); err != nil {
			errs = append(errs, err)
			continue
		}
		fixed = append(fixed, info)
	}
	return fixed, errors.Join(errs...)
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory: fsync, rename, fsync of the directory (so the rename itself
// survives a power loss).
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("recording: write %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("recording: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("recording: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("recording: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("recording: rename %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("recording: sync dir: %w", err)
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("recording: sync dir: %w", err)
	}
	return nil
}
