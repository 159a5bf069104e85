package signaling

// Recording (docs/recording.md): one recording session per class at a
// time. A session records the teacher's camera stream (video and
// microphone) into one file, and each screen share of the teacher into a
// file of its own, with ids "<session>" and "<session>-screen<n>". Each
// file is written by a recording.Recorder, one more sink of the stream's
// tracks: the class never waits for the disk.
//
// Lock order: recSession.mu -> recording.Recorder.mu -> sfu Track.mu.
// recSession.mu is never held while taking hub.mu or room.mu, nor while
// messages are broadcast. recManager.mu is a leaf: welcome reads the
// state under room.mu.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"lectern/auth"
	"lectern/recording"
	"lectern/sfu"
)

// DefaultLinkTTL is the lifetime of replay links by default.
const DefaultLinkTTL = 2 * time.Hour

// RecordingOptions configure recording; the zero value turns it off.
type RecordingOptions struct {
	// Dir holds the recordings and their catalog (<data>/recordings);
	// empty: recording is off.
	Dir string
	// All records every class from the teacher's first camera stream.
	All bool
	// Retention deletes recordings older than this; 0 keeps them.
	Retention time.Duration
	// LinkTTL is the lifetime of replay links (default 2h).
	LinkTTL time.Duration
	// ClusterInterval bounds what a crash loses (default 1 s).
	ClusterInterval time.Duration
}

// Protocol payloads of recording.
type (
	recordData struct {
		Active *bool `json:"active"`
	}
	recordingData struct {
		Active bool   `json:"active"`
		ID     string `json:"id,omitempty"`
	}
	recordingFailedData struct {
		Reason string `json:"reason"`
		ID     string `json:"id,omitempty"`
	}
)

func (d *recordData) validate() error {
	if d.Active == nil {
		return badField("active", "is required")
	}
	return nil
}

// recManager runs the recordings of one server.
type recManager struct {
	s    *Server
	opts RecordingOptions
	cat  *recording.Catalog // nil: recording off
	log  zerolog.Logger
	now  func() time.Time
	stop chan struct{}
	once sync.Once

	// failures counts the recordings that stopped by themselves, by reason.
	failures *prometheus.CounterVec
	lastFail atomic.Pointer[recFailure] // the latest, for the console

	mu     sync.Mutex // leaf
	active map[sfu.RoomID]*recSession
	auto   map[sfu.RoomID]bool // the class's automatic recording has been started
	closed bool
}

// recSession is one recording of one class.
type recSession struct {
	m    *recManager
	id   recording.RecordingID
	room sfu.RoomID

	mu      sync.Mutex
	cam     *recording.Recorder
	cams    int
	screen  *recording.Recorder
	screenS *stream // the stream screen follows
	screens int
	ended   bool
}

func newRecManager(s *Server, opts RecordingOptions) (*recManager, error) {
	if opts.LinkTTL <= 0 {
		opts.LinkTTL = DefaultLinkTTL
	}
	m := &recManager{
		s: s, opts: opts, log: s.log.With().Str("component", "recording").Logger(),
		now: time.Now, stop: make(chan struct{}),
		active: map[sfu.RoomID]*recSession{}, auto: map[sfu.RoomID]bool{},
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lectern_recording_failures_total",
			Help: "Recordings that stopped by themselves, by reason: disk_full or write_error.",
		}, []string{"reason"}),
	}
	for _, r := range []string{"disk_full", "write_error"} {
		m.failures.WithLabelValues(r) // exported at 0 from the start, for rate()
	}
	if opts.Dir == "" {
		return m, nil
	}
	cat, err := recording.OpenCatalog(opts.Dir)
	if err != nil {
		return nil, err
	}
	m.cat = cat
	m.recover()
	return m, nil
}

// recover repairs the files a crash left unfinished, before any recorder
// starts, and marks them as repaired.
func (m *recManager) recover() {
	fixed, err := m.cat.Recover()
	for _, info := range fixed {
		if werr := os.WriteFile(m.markerPath(info.ID), nil, 0o640); werr != nil {
			m.log.Warn().Err(werr).Msg("recording: repaired marker")
		}
		m.log.Warn().Str("recording", string(info.ID)).Dur("duration", info.Duration).
			Msg("recording: repaired a recording left unfinished by a crash")
	}
	if err != nil {
		m.log.Error().Err(err).Msg("recording: recovery")
	}
}

func (m *recManager) markerPath(id recording.RecordingID) string {
	return filepath.Join(m.opts.Dir, string(id)+".repaired")
}

func (m *recManager) repaired(id recording.RecordingID) bool {
	_, err := os.Stat(m.markerPath(id))
	return err == nil
}

func (m *recManager) enabled() bool { return m.cat != nil }

// disk is the free and total bytes of the recordings' file system; false
// when the node records nothing or the file system cannot be read.
func (m *recManager) disk() (free, size uint64, ok bool) {
	if !m.enabled() {
		return 0, 0, false
	}
	return recording.DiskSpace(m.opts.Dir)
}

// state is what welcome tells about the class's recording.
func (m *recManager) state(room sfu.RoomID) recordingData {
	m.mu.Lock()
	defer m.mu.Unlock()
	if x := m.active[room]; x != nil {
		return recordingData{Active: true, ID: string(x.id)}
	}
	return recordingData{}
}

// start starts recording the class; created is false when it was
// already recording.
func (m *recManager) start(room sfu.RoomID, by sfu.ParticipantID) (id recording.RecordingID, created bool, err error) {
	if !m.enabled() {
		return "", false, ErrRecordingOff
	}
	if m.s.hub.lookup(room) == nil {
		return "", false, fmt.Errorf("%w: the class is not open", ErrNotFound)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return "", false, ErrShuttingDown
	}
	if x := m.active[room]; x != nil {
		m.mu.Unlock()
		return x.id, false, nil
	}
	x := m.newSession(room)
	m.mu.Unlock()
	for _, st := range m.s.hub.teacherStreams(room) {
		x.follow(st.st, st.tracks)
	}
	m.announce(room, recordingData{Active: true, ID: string(x.id)})
	m.log.Info().Str("room", string(room)).Str("recording", string(x.id)).Msg("recording: started")
	m.s.audit.recordingStarted(room, string(x.id), string(by))
	return x.id, true, nil
}

// recFailure is a recording that stopped by itself.
type recFailure struct {
	room   sfu.RoomID
	reason string
	at     time.Time
}

// lastFailure is the latest recording failure, if any.
func (m *recManager) lastFailure() (recFailure, bool) {
	if f := m.lastFail.Load(); f != nil {
		return *f, true
	}
	return recFailure{}, false
}

// activeCount is the number of classes being recorded.
func (m *recManager) activeCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.active)
}

// newSession registers a session; m.mu is held.
func (m *recManager) newSession(room sfu.RoomID) *recSession {
	x := &recSession{m: m, id: recording.NewID(), room: room}
	m.active[room] = x
	m.auto[room] = true
	return x
}

// stopRoom ends the class's recording and finalizes its files; by
// stopped it (empty when the class ended).
func (m *recManager) stopRoom(room sfu.RoomID, by sfu.ParticipantID) ([]recording.Info, error) {
	reason := stopRequested
	if by == "" {
		reason = stopClassEnded
	}
	return m.stopWith(room, by, reason)
}

// stopWith is stopRoom with the reason the audit event gives.
func (m *recManager) stopWith(room sfu.RoomID, by sfu.ParticipantID, reason string) ([]recording.Info, error) {
	m.mu.Lock()
	x := m.active[room]
	if x != nil {
		delete(m.active, room)
	}
	m.mu.Unlock()
	if x == nil {
		return nil, fmt.Errorf("%w: the class is not being recorded", ErrNotFound)
	}
	infos := x.end()
	m.announce(room, recordingData{Active: false, ID: string(x.id)})
	m.log.Info().Str("room", string(room)).Str("recording", string(x.id)).Msg("recording: stopped")
	m.s.audit.recordingStopped(room, string(x.id), string(by), reason)
	return infos, nil
}

// streamReady follows a teacher's stream that just became ready; with
// All, the class's first teacher camera starts its recording.
func (m *recManager) streamReady(room sfu.RoomID, st *stream, tracks []*sfu.Track) {
	if !m.enabled() || !st.teacher {
		return
	}
	m.mu.Lock()
	x := m.active[room]
	started := false
	if x == nil && m.opts.All && !m.auto[room] && st.label == labelCamera && !m.closed {
		x, started = m.newSession(room), true
	}
	m.mu.Unlock()
	if x == nil {
		return
	}
	x.follow(st, tracks)
	if started {
		m.announce(room, recordingData{Active: true, ID: string(x.id)})
		m.log.Info().Str("room", string(room)).Str("recording", string(x.id)).Msg("recording: started for every class")
		m.s.audit.recordingStarted(room, string(x.id), "")
	}
}

// streamEnded finalizes the file of an ended screen share. A camera
// stream that ends keeps its file open: a teacher who reconnects goes on
// in it, and the time between shows as a gap.
func (m *recManager) streamEnded(room sfu.RoomID, st *stream) {
	m.mu.Lock()
	x := m.active[room]
	m.mu.Unlock()
	if x != nil && st.label == labelScreen {
		x.screenEnded(st)
	}
}

// classEnded stops the recording of a class nobody is in any more.
func (m *recManager) classEnded(room sfu.RoomID) {
	if m.s.hub.lookup(room) != nil {
		return
	}
	m.mu.Lock()
	delete(m.auto, room)
	busy := m.active[room] != nil
	m.mu.Unlock()
	if busy {
		_, _ = m.stopRoom(room, "")
	}
}

// failed ends a session whose recorder stopped by itself (disk full, a
// write error); the class goes on and its teachers and operators are told.
func (m *recManager) failed(x *recSession, err error) {
	m.mu.Lock()
	current := m.active[x.room] == x
	if current {
		delete(m.active, x.room)
	}
	m.mu.Unlock()
	x.end()
	reason := "write_error"
	if errors.Is(err, recording.ErrDiskFull) {
		reason = "disk_full"
	}
	m.failures.WithLabelValues(reason).Inc()
	m.lastFail.Store(&recFailure{room: x.room, reason: reason, at: time.Now()})
	m.log.Error().Err(err).Str("room", string(x.room)).Str("recording", string(x.id)).Msg("recording: failed; the class goes on")
	m.s.audit.recordingStopped(x.room, string(x.id), "", stopFailed)
	if current {
		m.announce(x.room, recordingData{Active: false, ID: string(x.id)})
	}
	m.tellModerators(x.room, encode(typeRecordingFailed, "", recordingFailedData{Reason: reason, ID: string(x.id)}))
}

// shutdown finalizes every recording; the server is stopping.
func (m *recManager) shutdown() {
	m.once.Do(func() { close(m.stop) })
	m.mu.Lock()
	m.closed = true
	sessions := make([]*recSession, 0, len(m.active))
	for room, x := range m.active {
		sessions = append(sessions, x)
		delete(m.active, room)
	}
	m.mu.Unlock()
	for _, x := range sessions {
		x.end()
		m.s.audit.recordingStopped(x.room, string(x.id), "", stopShutdown)
	}
}

// announce tells everyone in the class about its recording.
func (m *recManager) announce(room sfu.RoomID, d recordingData) {
	r := m.s.hub.lookup(room)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.broadcastLocked(encode(typeRecording, "", d), nil)
}

// tellModerators sends msg to the class's teachers and operators.
func (m *recManager) tellModerators(room sfu.RoomID, msg []byte) {
	r := m.s.hub.lookup(room)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, mb := range r.members {
		if role := auth.Role(mb.info.Role); role == auth.RoleTeacher || role == auth.RoleOperator {
			mb.conn.enqueue(msg)
		}
	}
}

// newRecorder starts one file of session x.
func (m *recManager) newRecorder(x *recSession, id recording.RecordingID, teacher, label string) (*recording.Recorder, error) {
	return recording.New(m.opts.Dir, recording.Options{
		ID: id, Room: x.room, Teacher: teacher, Label: label, Catalog: m.cat,
		Logger:          m.log.With().Str("room", string(x.room)).Logger(),
		ClusterInterval: m.opts.ClusterInterval,
		OnError: func(err error) {
			// Called on the recorder's own goroutine, which Stop waits
			// for: the session is ended from another one.
			if !m.s.tasks.start(func() { m.failed(x, err) }) {
				m.log.Error().Err(err).Msg("recording: failed while the server stops")
			}
		},
	})
}

// follow records a teacher stream: the camera into the session's main
// file (a reconnected camera replaces its tracks), a screen share into a
// file of its own.
func (x *recSession) follow(st *stream, tracks []*sfu.Track) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.ended || len(tracks) == 0 {
		return
	}
	srcs := make([]recording.Source, len(tracks))
	for i, t := range tracks {
		srcs[i] = t
	}
	name := st.owner.claims.Name
	if st.label == labelScreen {
		x.followScreen(st, name, srcs)
		return
	}
	if x.cam == nil && !x.newCamera(name) {
		return
	}
	err := x.cam.Attach(srcs...)
	if errors.Is(err, recording.ErrCodecChanged) {
		// Another codec cannot go on in the same file: a new one starts.
		x.stopLocked(&x.cam)
		if !x.newCamera(name) {
			return
		}
		err = x.cam.Attach(srcs...)
	}
	if err != nil {
		x.m.log.Warn().Err(err).Str("recording", string(x.id)).Msg("recording: cannot record the camera")
	}
}

// newCamera starts the camera file: the session id, then "-camera2"...
func (x *recSession) newCamera(name string) bool {
	x.cams++
	id := x.id
	if x.cams > 1 {
		id = recording.RecordingID(string(x.id) + "-camera" + strconv.Itoa(x.cams))
	}
	r, err := x.m.newRecorder(x, id, name, labelCamera)
	if err != nil {
		x.m.log.Error().Err(err).Msg("recording: cannot start")
		return false
	}
	x.cam = r
	return true
}

func (x *recSession) followScreen(st *stream, name string, srcs []recording.Source) {
	if x.screen != nil && x.screenS == st {
		return
	}
	x.stopLocked(&x.screen)
	x.screens++
	id := recording.RecordingID(string(x.id) + "-screen" + strconv.Itoa(x.screens))
	r, err := x.m.newRecorder(x, id, name, labelScreen)
	if err != nil {
		x.m.log.Error().Err(err).Msg("recording: cannot start the screen file")
		return
	}
	x.screen, x.screenS = r, st
	if err := r.Attach(srcs...); err != nil {
		x.m.log.Warn().Err(err).Str("recording", string(id)).Msg("recording: cannot record the screen")
	}
}

func (x *recSession) screenEnded(st *stream) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.screenS == st {
		x.stopLocked(&x.screen)
		x.screenS = nil
	}
}

// stopLocked finalizes *rp and clears it; x.mu is held.
func (x *recSession) stopLocked(rp **recording.Recorder) (recording.Info, bool) {
	r := *rp
	if r == nil {
		return recording.Info{}, false
	}
	*rp = nil
	info, err := r.Stop()
	switch {
	case errors.Is(err, recording.ErrEmpty):
		return info, false
	case err != nil:
		x.m.log.Warn().Err(err).Str("recording", string(r.ID())).Msg("recording: stopped with an error")
	}
	return info, info.Path != ""
}

// end finalizes every file of the session, once, and returns them.
func (x *recSession) end() []recording.Info {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.ended = true
	var out []recording.Info
	for _, rp := range []**recording.Recorder{&x.cam, &x.screen} {
		if info, ok := x.stopLocked(rp); ok {
			out = append(out, info)
		}
	}
	x.screenS = nil
	return out
}

// sessionOf is the session id of a recording id: the part before "-".
func sessionOf(id recording.RecordingID) recording.RecordingID {
	s, _, _ := strings.Cut(string(id), "-")
	return recording.RecordingID(s)
}

// sweepLoop deletes old recordings now and then, until the server stops.
func (m *recManager) sweepLoop() {
	every := min(max(m.opts.Retention/24, time.Minute), time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		m.sweep(m.now())
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// sweep deletes the finished recordings that ended more than Retention
// before now; it returns how many.
func (m *recManager) sweep(now time.Time) int {
	if !m.enabled() || m.opts.Retention <= 0 {
		return 0
	}
	all, err := m.cat.List()
	if err != nil {
		m.log.Warn().Err(err).Msg("recording: catalog")
	}
	n := 0
	for _, info := range all {
		if !info.Complete || now.Sub(info.Start.Add(info.Duration)) <= m.opts.Retention {
			continue
		}
		if err := m.cat.Delete(info.ID); err != nil {
			m.log.Warn().Err(err).Str("recording", string(info.ID)).Msg("recording: retention")
			continue
		}
		_ = os.Remove(m.markerPath(info.ID))
		n++
		m.log.Info().Str("recording", string(info.ID)).Msg("recording: deleted by retention")
	}
	return n
}

// --- hub and room helpers ---

// lookup returns the open class id, or nil.
func (h *hub) lookup(id sfu.RoomID) *room {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rooms[id]
}

type streamTracks struct {
	st     *stream
	tracks []*sfu.Track
}

// teacherStreams lists the class's ready teacher streams with their tracks.
func (h *hub) teacherStreams(id sfu.RoomID) []streamTracks {
	r := h.lookup(id)
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []streamTracks
	for _, st := range r.readyStreamsLocked() {
		if st.teacher {
			out = append(out, streamTracks{st, append([]*sfu.Track(nil), st.tracks...)})
		}
	}
	return out
}

// record is the teacher's `record` message.
func (c *conn) record(active bool) error {
	if c.claims.Role != auth.RoleTeacher && c.claims.Role != auth.RoleOperator {
		return fmt.Errorf("%w: only teachers start and stop recordings", ErrForbidden)
	}
	room := c.room.id
	if active {
		_, _, err := c.s.rec.start(room, c.pid)
		return err
	}
	if !c.s.rec.state(room).Active {
		return nil
	}
	_, err := c.s.rec.stopRoom(room, c.pid)
	if errors.Is(err, ErrNotFound) {
		return nil // stopped meanwhile
	}
	return err
}
