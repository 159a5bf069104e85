package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
	"lectern/config"
)

// serveForDrain runs `lectern serve` with the test secret until the test
// ends and returns its base URL.
func serveForDrain(t *testing.T) string {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, serveArgs(t, "127.0.0.1:0"), config.EnvList([]string{"LECTERN_SECRET=" + testSecret}), pw, &stderr)
		pw.Close()
	}()
	t.Cleanup(func() {
		stop()
		require.Equal(t, exitOK, <-done, stderr.String())
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err, stderr.String())
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	m := regexp.MustCompile(`open (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(line)
	require.NotNil(t, m, line)
	return m[1]
}

func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(base + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestDrainWaitsUntilEmpty drains a running node with a teacher in a
// class: the node stops being ready at once, `lectern drain --wait`
// reports the teacher and returns only once the teacher has left; then
// --undo makes the node ready again.
func TestDrainWaitsUntilEmpty(t *testing.T) {
	t.Parallel()
	base := serveForDrain(t)
	signer, err := auth.NewSigner([]byte(testSecret))
	require.NoError(t, err)
	tok, err := client.MintToken(signer, "algebra", auth.RoleTeacher, "Ms Rivera", "")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	teacher, err := client.Dial(ctx, base, tok, client.Options{Logger: zerolog.Nop(), NoSubscribe: true})
	require.NoError(t, err)
	defer teacher.Close()

	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	env := config.EnvList([]string{"LECTERN_SECRET=" + testSecret})
	go func() {
		done <- run(ctx, []string{"drain", "--url", base, "--wait", "--interval", "20ms"}, env, &stdout, &stderr)
	}()
	require.Eventually(t, func() bool {
		return strings.Contains(stdout.String(), "draining: 1 participants (0 students) in 1 classes")
	}, 10*time.Second, 10*time.Millisecond, "drain reports the teacher: %s %s", stdout.String(), stderr.String())
	code, body := readyz(t, base)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "draining\n", body)
	select {
	case code := <-done:
		t.Fatalf("drain returned %d with the teacher still there: %s", code, stdout.String())
	case <-time.After(200 * time.Millisecond):
	}

	require.NoError(t, teacher.Close())
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not return once the node was empty")
	}
	require.Contains(t, stdout.String(), "drained: no teacher or student left")

	r := runCmd([]string{"drain", "--url", base, "--undo"}, "LECTERN_SECRET="+testSecret)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "taking classes: 0 participants")
	code, _ = readyz(t, base)
	require.Equal(t, http.StatusOK, code)
}

// TestDrainRefused: a token signed with another secret is refused with
// the node's answer, and bad flags are usage errors.
func TestDrainRefused(t *testing.T) {
	t.Parallel()
	base := serveForDrain(t)
	r := runCmd([]string{"drain", "--url", base}, "LECTERN_SECRET="+strings.Repeat("f", 64))
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "401")
	code, _ := readyz(t, base)
	require.Equal(t, http.StatusOK, code, "a refused drain changes nothing")

	for _, args := range [][]string{{"--url", "ftp://x"}, {"--wait", "--undo"}, {"--interval", "0s"}, {"extra"}} {
		r := runCmd(append([]string{"drain"}, args...), "LECTERN_SECRET="+testSecret)
		require.Equal(t, exitUsage, r.code, "%v: %s", args, r.stderr)
	}
}
