package recording

// Lock order: muxFile.mu is a leaf. It is taken by the muxing library's
// goroutine (Write, WriteAt, Close) and by the recorder's writer goroutine
// (flush, setDuration); neither holds another lock while taking it.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
)

// File is where a recording is written. *os.File implements it.
type File interface {
	io.Writer
	io.WriterAt
	io.Closer
	Sync() error
}

func createFile(path string) (File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
}

// headCapture is how much of the file start is kept to find the Duration
// element after the library wrote the header.
const headCapture = 4096

// muxFile buffers the muxer's writes and puts them on disk when the
// recorder says so (once per cluster interval), so a kill -9 loses at
// most that interval. It never returns an error to the muxing library
// (which would stop its goroutine and block later writes forever): the
// first error is kept and the recorder checks it after each frame.
type muxFile struct {
	mu     sync.Mutex
	f      File
	buf    *bufio.Writer
	size   int64
	head   []byte
	err    error
	sync   bool
	closed bool
}

func newMuxFile(f File, sync bool) *muxFile {
	return &muxFile{f: f, buf: bufio.NewWriterSize(f, 256<<10), sync: sync}
}

func (m *muxFile) Write(b []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil || m.closed {
		return len(b), nil
	}
	if len(m.head) < headCapture {
		m.head = append(m.head, b[:min(len(b), headCapture-len(m.head))]...)
	}
	if _, err := m.buf.Write(b); err != nil {
		m.err = err
	}
	m.size += int64(len(b))
	return len(b), nil
}

// WriteAt is used by the library to fill in Cues and Duration on close.
func (m *muxFile) WriteAt(b []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writeAtLocked(b, off)
	return len(b), nil
}

func (m *muxFile) writeAtLocked(b []byte, off int64) {
	if m.err != nil || m.closed {
		return
	}
	if err := m.buf.Flush(); err != nil {
		m.err = err
		return
	}
	if _, err := m.f.WriteAt(b, off); err != nil {
		m.err = err
	}
}

// Close is called by the library once it has finalized the file.
func (m *muxFile) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.flushLocked()
	m.closed = true
	if err := m.f.Close(); err != nil && m.err == nil {
		m.err = err
	}
	return nil
}

func (m *muxFile) flushLocked() {
	if m.err != nil || m.closed {
		return
	}
	if err := m.buf.Flush(); err != nil {
		m.err = err
		return
	}
	if m.sync {
		if err := m.f.Sync(); err != nil {
			m.err = err
		}
	}
}

// flush writes buffered data and the running duration (ms), so the file
// on disk is playable with a right duration up to this point.
func (m *muxFile) flush(durPos int64, durMS int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if durPos > 0 {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], math.Float64bits(float64(durMS)))
		m.writeAtLocked(v[:], durPos)
	}
	m.flushLocked()
}

// status returns the first error and the bytes written so far.
func (m *muxFile) status() (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size, m.err
}

// durationPos finds the 8-byte Duration value in the header: element ID
// 44 89, size 88 (one-byte length, 8 bytes), as the library writes it.
func (m *muxFile) durationPos() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := bytes.Index(m.head, []byte{0x44, 0x89, 0x88}); i >= 0 {
		return int64(i) + 3
	}
	return 0
}

// mapWriteError turns a write failure into a sentinel: ENOSPC (and EDQUOT,
// a full quota) become ErrDiskFull.
func mapWriteError(err error) error {
	if errors.Is(err, ErrDiskFull) || errors.Is(err, ErrWrite) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %v", ErrDiskFull, err)
	}
	return fmt.Errorf("%w: %v", ErrWrite, err)
}

// muxConfig is what a file is opened with.
type muxConfig struct {
	tracks     []webm.TrackEntry
	webm       bool   // DocType webm, else matroska
	mainTrack  uint64 // the video track (or audio when there is none)
	audioOnly  bool
	clusterMax time.Duration
	cuesSpace  int
	start      time.Time
}

// muxer writes SimpleBlocks through ebml-go's block writer: unknown-size
// Segment and Clusters (so any prefix of the file is readable), a Void
// reserved for Cues and a Duration filled in on close.
type muxer struct {
	file    *muxFile
	writers []mkvcore.BlockWriteCloser
	durPos  int64
	fatal   chan error
}

func newMuxer(f File, cfg muxConfig, syncWrites bool) (*muxer, error) {
	m := &muxer{file: newMuxFile(f, syncWrites), fatal: make(chan error, 1)}
	docType := "matroska"
	if cfg.webm {
		docType = "webm"
	}
	descs := make([]mkvcore.TrackDescription, len(cfg.tracks))
	for i, t := range cfg.tracks {
		descs[i] = mkvcore.TrackDescription{TrackNumber: t.TrackNumber, TrackEntry: t}
	}
	maxMS := cfg.clusterMax.Milliseconds()
	// A new cluster starts at every video key frame (min 0) and at least
	// every maxMS; with audio only, every maxMS.
	minMS := int64(0)
	if cfg.audioOnly {
		minMS = maxMS
	}
	ws, err := mkvcore.NewSimpleBlockWriter(m.file, descs,
		mkvcore.WithEBMLHeader(&webm.EBMLHeader{
			EBMLVersion: 1, EBMLReadVersion: 1, EBMLMaxIDLength: 4, EBMLMaxSizeLength: 8,
			DocType: docType, DocTypeVersion: 4, DocTypeReadVersion: 2,
		}),
		mkvcore.WithSegmentInfo(&webm.Info{
			TimecodeScale: 1_000_000, MuxingApp: "Lectern", WritingApp: "Lectern", DateUTC: cfg.start,
		}),
		mkvcore.WithSeekHead(true),
		mkvcore.WithCues(cfg.cuesSpace),
		mkvcore.WithMinMaxClusterDuration(cfg.mainTrack, minMS, maxMS),
		mkvcore.WithOnFatalHandler(m.onFatal),
		mkvcore.WithOnErrorHandler(func(error) {}), // late frames: never sent (see interleaver)
	)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("recording: open muxer: %w", err)
	}
	m.writers = ws
	m.durPos = m.file.durationPos()
	return m, nil
}

// onFatal runs on the library's goroutine when it cannot marshal; it must
// not block.
func (m *muxer) onFatal(err error) {
	select {
	case m.fatal <- err:
	default:
	}
}

// write adds one frame; track is the index in cfg.tracks, ts in ms.
func (m *muxer) write(track int, key bool, ts int64, frame []byte) error {
	if _, err := m.writers[track].Write(key, ts, frame); err != nil {
		return err
	}
	return m.err()
}

func (m *muxer) err() error {
	select {
	case err := <-m.fatal:
		m.fatal <- err
		return fmt.Errorf("%w: %v", ErrWrite, err)
	default:
	}
	if _, err := m.file.status(); err != nil {
		return mapWriteError(err)
	}
	return nil
}

// flush puts everything written so far on disk with the duration so far.
func (m *muxer) flush(durMS int64) { m.file.flush(m.durPos, durMS) }

// close finalizes the file: the library writes the Cues into the reserved
// space and the Duration, then closes it. Closing the last track writer
// blocks until that is done.
func (m *muxer) close() (int64, error) {
	for _, w := range m.writers {
		_ = w.Close()
	}
	size, _ := m.file.status()
	return size, m.err()
}
