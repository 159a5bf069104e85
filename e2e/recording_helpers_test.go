package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

// recEntry is a recording as GET /api/recordings shows it.
type recEntry struct {
	ID       string    `json:"id"`
	Room     string    `json:"room"`
	Teacher  string    `json:"teacher"`
	Start    time.Time `json:"start"`
	Duration float64   `json:"duration"`
	Size     int64     `json:"size"`
	Codecs   []string  `json:"codecs"`
	Complete bool      `json:"complete"`
	Repaired bool      `json:"repaired"`
}

// apiCall sends a request with a bearer token and decodes a JSON answer.
func apiCall(t *testing.T, method, url, token string, want int, out any) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, want, resp.StatusCode, "%s %s: %s", method, url, body)
	if out != nil {
		require.NoError(t, json.Unmarshal(body, out))
	}
	return body
}

// download fetches a recording's media with an operator token.
func download(t *testing.T, base, id, token string) string {
	t.Helper()
	body := apiCall(t, http.MethodGet, base+"/api/recordings/"+id+"/media", token, http.StatusOK, nil)
	p := filepath.Join(t.TempDir(), id+".webm")
	require.NoError(t, os.WriteFile(p, body, 0o600))
	return p
}

type probe struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

// ffprobe reads a file's streams and duration; a missing ffprobe fails.
func ffprobe(t *testing.T, path string) (kinds map[string]string, dur float64) {
	t.Helper()
	bin, err := exec.LookPath("ffprobe")
	require.NoError(t, err, "ffprobe is needed: run scripts/test, which installs ffmpeg")
	out, err := exec.Command(bin, "-v", "error", "-show_entries", "format=duration:stream=codec_type,codec_name",
		"-of", "json", path).Output()
	require.NoError(t, err, "ffprobe %s", path)
	var p probe
	require.NoError(t, json.Unmarshal(out, &p))
	kinds = map[string]string{}
	for _, s := range p.Streams {
		kinds[s.CodecType] = s.CodecName
	}
	dur, err = strconv.ParseFloat(p.Format.Duration, 64)
	require.NoError(t, err, "duration %q", p.Format.Duration)
	return kinds, dur
}

// ffmpegDecode decodes every frame and returns what ffmpeg complained about.
func ffmpegDecode(t *testing.T, path string) string {
	t.Helper()
	bin, err := exec.LookPath("ffmpeg")
	require.NoError(t, err, "ffmpeg is needed: run scripts/test, which installs it")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-v", "error", "-i", path, "-enc_time_base", "-1", "-f", "null", "-")
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	return stderr.String()
}

// recordingEvents collects the `recording` messages a client receives.
type recordingEvents struct {
	mu   sync.Mutex
	msgs []struct {
		Active bool   `json:"active"`
		ID     string `json:"id"`
	}
}

func (r *recordingEvents) on(ev client.Event) {
	raw, ok := ev.Data.(json.RawMessage)
	if ev.Type != "recording" || !ok {
		return
	}
	var m struct {
		Active bool   `json:"active"`
		ID     string `json:"id"`
	}
	if json.Unmarshal(raw, &m) == nil {
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.mu.Unlock()
	}
}

func (r *recordingEvents) seen(active bool, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if m.Active == active && m.ID == id {
			return true
		}
	}
	return false
}

// recordSeconds records a class for d through the API with the teacher's
// token and returns the finished entry and the wall-clock time of the stop.
func recordSeconds(t *testing.T, srv *server, room, teacher string, d time.Duration) (recEntry, time.Time) {
	t.Helper()
	var started struct {
		ID string `json:"id"`
	}
	apiCall(t, http.MethodPost, srv.base+"/api/rooms/"+room+"/recording", teacher, http.StatusCreated, &started)
	time.Sleep(d) // the length of the recording itself, not a wait for a condition
	stopAt := time.Now()
	var stopped struct {
		Recordings []recEntry `json:"recordings"`
	}
	apiCall(t, http.MethodDelete, srv.base+"/api/rooms/"+room+"/recording", teacher, http.StatusOK, &stopped)
	require.Len(t, stopped.Recordings, 1)
	require.Equal(t, started.ID, stopped.Recordings[0].ID)
	return stopped.Recordings[0], stopAt
}

func operatorToken(t *testing.T, s *auth.Signer) string {
	t.Helper()
	tok, err := client.MintToken(s, auth.AllRooms, auth.RoleOperator, "Ops", "")
	require.NoError(t, err)
	return tok
}

// lossyTrack drops about lossPct% of a track's RTP packets and swaps
// about swapPct% with their successor, between the sample packetizer and
// the peer connection (so neither NACKs nor the sender can repair them).
type lossyTrack struct {
	webrtc.TrackLocal
	lossPct, swapPct int
}

func (l lossyTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	return l.TrackLocal.Bind(lossyContext{TrackLocalContext: ctx, l: l})
}

type lossyContext struct {
	webrtc.TrackLocalContext
	l lossyTrack
}

func (c lossyContext) WriteStream() webrtc.TrackLocalWriter {
	return &lossyWriter{w: c.TrackLocalContext.WriteStream(), l: c.l, rng: rand.New(rand.NewPCG(1, 2))}
}

type lossyWriter struct {
	w   webrtc.TrackLocalWriter
	l   lossyTrack
	mu  sync.Mutex
	rng *rand.Rand
	// held is a packet waiting to be sent after its successor.
	held *rtp.Packet
	// Counters, for the test log.
	dropped, swapped int
}

func (w *lossyWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rng.IntN(100) < w.l.lossPct {
		w.dropped++
		return len(payload), nil
	}
	p := &rtp.Packet{Header: h.Clone(), Payload: bytes.Clone(payload)}
	if w.held == nil && w.rng.IntN(100) < w.l.swapPct {
		w.held = p
		w.swapped++
		return len(payload), nil
	}
	n, err := w.w.WriteRTP(&p.Header, p.Payload)
	if held := w.held; held != nil {
		w.held = nil
		_, _ = w.w.WriteRTP(&held.Header, held.Payload)
	}
	return n, err
}

func (w *lossyWriter) Write(b []byte) (int, error) { return w.w.Write(b) }
