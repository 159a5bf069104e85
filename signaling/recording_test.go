package signaling

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/recording"
)

func newRecEnv(t *testing.T, edit func(*RecordingOptions)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	return newEnvWith(t, func(o *Options) {
		o.Recording = RecordingOptions{Dir: dir, ClusterInterval: 200 * time.Millisecond}
		if edit != nil {
			edit(&o.Recording)
		}
	})
}

func (e *testEnv) mint(c auth.Claims, ttl time.Duration) string {
	e.t.Helper()
	tok, err := e.signer.Mint(c, ttl)
	require.NoError(e.t, err)
	return tok
}

func waitRecording(c *wsClient, active bool) recordingData {
	c.t.Helper()
	var d recordingData
	c.decode(c.wait("recording", func(m envelope) bool {
		var x recordingData
		return m.Type == typeRecording && json.Unmarshal(m.Data, &x) == nil && x.Active == active
	}), &d)
	return d
}

// recordClass publishes a WHIP teacher camera in room, records it for a
// moment through the API and returns the finished recording.
func recordClass(t *testing.T, e *testEnv, room string, student *wsClient) recordingEntry {
	teacher := e.token(room, auth.RoleTeacher, "t1", "Ms Rivera")
	pub := e.startWHIP(t, room, teacher, whipOpts{})
	pub.send()
	res := e.mediaReq(http.MethodPost, "/api/rooms/"+room+"/recording", teacher, "", "")
	require.Equal(t, http.StatusCreated, res.status, res.body)
	var started recordingState
	require.NoError(t, json.Unmarshal([]byte(res.body), &started))
	got := waitRecording(student, true)
	require.Equal(t, started.ID, got.ID)
	again := e.mediaReq(http.MethodPost, "/api/rooms/"+room+"/recording", teacher, "", "")
	require.Equal(t, http.StatusOK, again.status, "a second start is the same recording")

	require.Eventually(t, func() bool {
		info, err := e.srv.rec.cat.Get(recording.RecordingID(started.ID))
		return err == nil && info.Start.Before(time.Now().Add(-time.Second))
	}, waitFor, 20*time.Millisecond, "the file starts")
	res = e.mediaReq(http.MethodDelete, "/api/rooms/"+room+"/recording", teacher, "", "")
	require.Equal(t, http.StatusOK, res.status, res.body)
	var stopped recordingState
	require.NoError(t, json.Unmarshal([]byte(res.body), &stopped))
	require.Len(t, stopped.Recordings, 1)
	waitRecording(student, false)
	rec := stopped.Recordings[0]
	require.Equal(t, started.ID, rec.ID)
	require.True(t, rec.Complete)
	require.Positive(t, rec.Size)
	require.Greater(t, rec.Duration, 0.5)
	require.Equal(t, "Ms Rivera", rec.Teacher)
	require.Equal(t, []string{"VP8", "Opus"}, rec.Codecs)
	res = e.mediaReq(http.MethodDelete, "/api/rooms/"+room+"/recording", teacher, "", "")
	require.Equal(t, http.StatusNotFound, res.status, "nothing left to stop")
	return rec
}

// The state reaches everyone, the API refuses whoever may not, and a
// finished recording is served to operators and replay links only.
func TestRecordingAPI(t *testing.T) {
	t.Parallel()
	e := newRecEnv(t, nil)
	const room = "algebra"
	student, w := e.join(e.token(room, auth.RoleStudent, "s1", "Ada"))
	require.False(t, w.Recording.Active)
	studentTok := e.token(room, auth.RoleStudent, "s1", "Ada")

	res := e.mediaReq(http.MethodPost, "/api/rooms/"+room+"/recording", studentTok, "", "")
	require.Equal(t, http.StatusForbidden, res.status, "students do not record")
	res = e.mediaReq(http.MethodPost, "/api/rooms/"+room+"/recording", "", "", "")
	require.Equal(t, http.StatusUnauthorized, res.status)
	other := e.token("history", auth.RoleTeacher, "t9", "Mr Other")
	res = e.mediaReq(http.MethodPost, "/api/rooms/"+room+"/recording", other, "", "")
	require.Equal(t, http.StatusForbidden, res.status, "another class's teacher")
	res = e.mediaReq(http.MethodPost, "/api/rooms/empty-class/recording", e.token("empty-class", auth.RoleTeacher, "t2", "T"), "", "")
	require.Equal(t, http.StatusNotFound, res.status, "a class nobody is in")

	rec := recordClass(t, e, room, student)
	id := rec.ID
	operator := e.token(auth.AllRooms, auth.RoleOperator, "op", "Ops")

	res = e.mediaReq(http.MethodGet, "/api/recordings", operator, "", "")
	require.Equal(t, http.StatusOK, res.status)
	require.Contains(t, res.body, `"id":"`+id+`"`)
	require.NotContains(t, res.body, e.srv.rec.opts.Dir, "no server path leaks")
	res = e.mediaReq(http.MethodGet, "/api/recordings", e.token(room, auth.RoleTeacher, "t1", "T"), "", "")
	require.Equal(t, http.StatusForbidden, res.status)

	// Who may open it.
	expired := rawToken(testSecret, map[string]any{"room": room, "role": "student", "sub": "replay", "rec": id,
		"exp": time.Now().Add(-time.Minute).Unix()})
	for name, tc := range map[string]struct {
		token  string
		status int
	}{
		"no token":                {"", http.StatusUnauthorized},
		"expired link":            {expired, http.StatusUnauthorized},
		"student of the class":    {studentTok, http.StatusForbidden},
		"teacher of the class":    {e.token(room, auth.RoleTeacher, "t1", "T"), http.StatusForbidden},
		"student of another":      {e.token("history", auth.RoleStudent, "s2", "Bo"), http.StatusForbidden},
		"link of another":         {e.mint(auth.Claims{Room: room, Role: auth.RoleStudent, Recording: "0123abcd"}, time.Minute), http.StatusForbidden},
		"operator of another":     {e.token("history", auth.RoleOperator, "op2", "O"), http.StatusForbidden},
		"operator of every class": {operator, http.StatusOK},
	} {
		for _, path := range []string{"/api/recordings/" + id, "/api/recordings/" + id + "/media"} {
			res := e.mediaReq(http.MethodGet, path, tc.token, "", "")
			require.Equal(t, tc.status, res.status, "%s: %s", name, path)
		}
	}
	res = e.mediaReq(http.MethodGet, "/api/recordings/nope", operator, "", "")
	require.Equal(t, http.StatusNotFound, res.status)
	res = e.mediaReq(http.MethodGet, "/api/recordings/..%2fsecret", operator, "", "")
	require.Equal(t, http.StatusNotFound, res.status)

	// A teacher mints a link; the link opens the recording and nothing else.
	res = e.mediaReq(http.MethodPost, "/api/recordings/"+id+"/link", studentTok, "", "")
	require.Equal(t, http.StatusForbidden, res.status)
	res = e.mediaReq(http.MethodPost, "/api/recordings/"+id+"/link", e.token(room, auth.RoleTeacher, "t1", "T"), "", "")
	require.Equal(t, http.StatusCreated, res.status, res.body)
	var link linkResponse
	require.NoError(t, json.Unmarshal([]byte(res.body), &link))
	require.True(t, strings.HasPrefix(link.URL, "/replay/"+id+"#token="), link.URL)
	replay := strings.TrimPrefix(link.URL, "/replay/"+id+"#token=")
	claims, err := e.signer.Verify(replay)
	require.NoError(t, err)
	require.Equal(t, auth.RoleStudent, claims.Role)
	require.Equal(t, id, claims.Recording)
	require.LessOrEqual(t, claims.Expiry, time.Now().Add(DefaultLinkTTL+time.Minute).Unix())
	res = e.mediaReq(http.MethodGet, "/api/recordings/"+id, replay, "", "")
	require.Equal(t, http.StatusOK, res.status)
	res = e.mediaReq(http.MethodPost, "/whip/"+room, replay, "application/sdp", "v=0")
	require.Equal(t, http.StatusForbidden, res.status, "a replay link does not publish")
	c := e.dial()
	c.send(typeJoin, "", joinData{Token: replay})
	require.Equal(t, closeForbidden, c.closeCode(), "a replay link does not join")

	checkRanges(t, e, id, replay)
}

// checkRanges compares range answers with the file, with the bearer
// token and with the replay page's cookie.
func checkRanges(t *testing.T, e *testEnv, id, token string) {
	info, err := e.srv.rec.cat.Get(recording.RecordingID(id))
	require.NoError(t, err)
	file, err := os.ReadFile(info.Path)
	require.NoError(t, err)
	require.Greater(t, len(file), 1000)
	res := e.mediaReq(http.MethodGet, "/api/recordings/"+id+"/media", token, "", "", "Range", "bytes=100-599")
	require.Equal(t, http.StatusPartialContent, res.status)
	require.Equal(t, file[100:600], []byte(res.body))
	require.Equal(t, "video/webm", res.header.Get("Content-Type"))
	res = e.mediaReq(http.MethodGet, "/api/recordings/"+id+"/media", token, "", "", "Range", "bytes=-50")
	require.Equal(t, http.StatusPartialContent, res.status)
	require.Equal(t, file[len(file)-50:], []byte(res.body))
	res = e.mediaReq(http.MethodGet, "/api/recordings/"+id+"/media", token, "", "")
	require.Equal(t, http.StatusOK, res.status)
	require.True(t, bytes.Equal(file, []byte(res.body)))

	// The cookie: scoped to the recording's paths, HttpOnly, Strict.
	res = e.mediaReq(http.MethodPost, "/api/recordings/"+id+"/session", token, "", "")
	require.Equal(t, http.StatusNoContent, res.status)
	cookies := (&http.Response{Header: res.header}).Cookies()
	require.Len(t, cookies, 1)
	ck := cookies[0]
	require.Equal(t, "/api/recordings/"+id+"/", ck.Path)
	require.True(t, ck.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, ck.SameSite)
	req, err := http.NewRequest(http.MethodGet, e.http.URL+"/api/recordings/"+id+"/media", nil)
	require.NoError(t, err)
	req.AddCookie(ck)
	req.Header.Set("Range", "bytes=0-99")
	resp, err := e.http.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, file[:100], buf.Bytes())
}

func TestRecordingProtocol(t *testing.T) {
	t.Parallel()
	e := newRecEnv(t, nil)
	const room = "chem"
	teacher, _ := e.join(e.token(room, auth.RoleTeacher, "t1", "Ms T"))
	student, _ := e.join(e.token(room, auth.RoleStudent, "s1", "Ada"))

	student.send(typeRecord, "r1", map[string]bool{"active": true})
	require.Equal(t, "forbidden", student.waitError("r1").Code)
	teacher.send(typeRecord, "r2", map[string]any{})
	require.Equal(t, "bad_request", teacher.waitError("r2").Code)

	teacher.send(typeRecord, "r3", map[string]bool{"active": true})
	on := waitRecording(student, true)
	require.NotEmpty(t, on.ID)
	waitRecording(teacher, true)

	// A late joiner learns it in its welcome.
	_, w := e.join(e.token(room, auth.RoleStudent, "s2", "Bo"))
	require.Equal(t, on, w.Recording)

	// A failing disk stops the recording, tells moderators why, and the class goes on.
	e.srv.rec.mu.Lock()
	x := e.srv.rec.active[room]
	e.srv.rec.mu.Unlock()
	require.NotNil(t, x)
	e.srv.rec.failed(x, recording.ErrDiskFull)
	var failed recordingFailedData
	teacher.decode(teacher.waitType(typeRecordingFailed), &failed)
	require.Equal(t, recordingFailedData{Reason: "disk_full", ID: on.ID}, failed)
	waitRecording(student, false)
	require.Zero(t, student.count(typeRecordingFailed), "students only see the indicator go")
	student.send(typeChat, "", chatData{Text: "still here"})
	teacher.wait("chat", func(m envelope) bool { return m.Type == typeChat })

	teacher.send(typeRecord, "r4", map[string]bool{"active": false})
	teacher.send(typeChat, "", chatData{Text: "done"})
	student.wait("chat done", func(m envelope) bool { return m.Type == typeChat && strings.Contains(string(m.Data), "done") })
}

// With All, the teacher's first camera starts the recording; the class
// ending finalizes it.
func TestRecordEveryClass(t *testing.T) {
	t.Parallel()
	e := newRecEnv(t, func(o *RecordingOptions) { o.All = true })
	const room = "auto"
	student, _ := e.join(e.token(room, auth.RoleStudent, "s1", "Ada"))
	pub := e.startWHIP(t, room, e.token(room, auth.RoleTeacher, "t1", "Ms T"), whipOpts{})
	pub.send()
	on := waitRecording(student, true)
	require.Eventually(t, func() bool {
		info, err := e.srv.rec.cat.Get(recording.RecordingID(on.ID))
		return err == nil && time.Since(info.Start) > 500*time.Millisecond
	}, waitFor, 20*time.Millisecond)
	pub.delete()
	student.send(typeLeave, "", noData{})
	require.Eventually(t, func() bool {
		info, err := e.srv.rec.cat.Get(recording.RecordingID(on.ID))
		return err == nil && info.Complete && info.Duration > 0
	}, waitFor, 20*time.Millisecond, "the class ended: the file is finalized")
}

func TestRetentionSweep(t *testing.T) {
	t.Parallel()
	e := newRecEnv(t, func(o *RecordingOptions) { o.Retention = 30 * 24 * time.Hour })
	m := e.srv.rec
	now := time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)
	put := func(id string, start time.Time, complete bool) string {
		p := filepath.Join(m.opts.Dir, id+".webm")
		require.NoError(t, os.WriteFile(p, []byte("media"), 0o600))
		require.NoError(t, m.cat.Put(recording.Info{ID: recording.RecordingID(id), Room: "r", Start: start,
			Duration: time.Hour, Path: p, Complete: complete}))
		return p
	}
	old := put("old", now.Add(-31*24*time.Hour), true)
	require.NoError(t, os.WriteFile(m.markerPath("old"), nil, 0o600))
	recent := put("recent", now.Add(-29*24*time.Hour), true)
	unfinished := put("unfinished", now.Add(-60*24*time.Hour), false)

	require.Equal(t, 1, m.sweep(now))
	_, err := m.cat.Get("old")
	require.ErrorIs(t, err, recording.ErrNotFound)
	require.NoFileExists(t, old)
	require.NoFileExists(t, m.markerPath("old"))
	require.FileExists(t, recent)
	require.FileExists(t, unfinished, "an unfinished file waits for its repair")
	require.Zero(t, m.sweep(now), "idempotent")
	require.Equal(t, 1, m.sweep(now.Add(48*time.Hour)), "recent ages out in turn")
}

func TestRecordingOff(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(*Options) {})
	const room = "plain"
	_, w := e.join(e.token(room, auth.RoleTeacher, "t1", "T"))
	require.False(t, w.Recording.Active)
	res := e.mediaReq(http.MethodPost, "/api/rooms/"+room+"/recording", e.token(room, auth.RoleTeacher, "t1", "T"), "", "")
	require.Equal(t, http.StatusServiceUnavailable, res.status)
	res = e.mediaReq(http.MethodGet, "/api/recordings", e.token("*", auth.RoleOperator, "o", "O"), "", "")
	require.Equal(t, http.StatusServiceUnavailable, res.status)
}
