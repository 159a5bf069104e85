package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
)

const crashSecret = "e2e-crash-secret-0123456789abcdef0123456789"

// TestRecordingSurvivesKill records with --record in a separate lectern
// process, kills it with SIGKILL after 8 s of publishing, and checks that
// the file plays up to about the kill and that the next start repairs it
// and lists it with its duration.
func TestRecordingSurvivesKill(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "lectern")
	build := exec.Command("go", "build", "-o", bin, "../cmd/lectern")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	data := t.TempDir()
	signer, err := auth.NewSigner([]byte(crashSecret))
	require.NoError(t, err)

	base, kill := startProcess(t, bin, data)
	room := newRoom()
	tok, err := client.MintToken(signer, room, auth.RoleTeacher, "Ms Crash", "")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	teacher, err := client.Dial(ctx, base, tok, client.Options{Logger: clientLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = teacher.Close() })
	publishClip(t, teacher, clipIVF, clipOgg)
	time.Sleep(8 * time.Second) // the length of the recording, not a wait for a condition
	kill()                      // SIGKILL: nothing is finalized
	teacher.Abort()

	files, err := filepath.Glob(filepath.Join(data, "recordings", "*.webm"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	kinds, dur := ffprobe(t, files[0])
	t.Logf("after kill -9: %.3f s readable, streams %v", dur, kinds)
	require.Contains(t, kinds, "video")
	require.Contains(t, kinds, "audio")
	require.GreaterOrEqual(t, dur, 6.0)

	base, _ = startProcess(t, bin, data)
	op, err := client.MintToken(signer, auth.AllRooms, auth.RoleOperator, "Ops", "")
	require.NoError(t, err)
	var list struct {
		Recordings []recEntry `json:"recordings"`
	}
	apiCall(t, http.MethodGet, base+"/api/recordings", op, http.StatusOK, &list)
	require.Len(t, list.Recordings, 1)
	rec := list.Recordings[0]
	t.Logf("after restart: %+v", rec)
	require.True(t, rec.Repaired)
	require.True(t, rec.Complete)
	require.Equal(t, room, rec.Room)
	require.GreaterOrEqual(t, rec.Duration, 6.0)
	_, repairedDur := ffprobe(t, files[0])
	require.InDelta(t, rec.Duration, repairedDur, 0.5)
	require.Empty(t, ffmpegDecode(t, files[0]))
}

// startProcess runs `lectern serve --record` on free ports of 127.0.0.1
// and waits until it is ready. kill sends SIGKILL and waits for the exit;
// the process is killed when the test ends at the latest.
func startProcess(t *testing.T, bin, data string) (base string, kill func()) {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(bin, "serve", "--record", "--public-ip", "127.0.0.1",
		"--http", "127.0.0.1:"+strconv.Itoa(port), "--udp-port", "0", "--tcp-port", "-1",
		"--data", data, "--auth", "tokens", "--log-level", "warn", "--log-format", "json")
	cmd.Env = append(os.Environ(), "LECTERN_SECRET="+crashSecret)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "lectern.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	kill = func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	t.Cleanup(func() {
		kill()
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("lectern log:\n%s", b)
		}
	})
	base = fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(t, 30*time.Second, "lectern ready", func() (bool, string) {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return base, kill
}

// freePort finds a TCP port of 127.0.0.1 that is free now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
