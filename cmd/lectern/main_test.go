package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"lectern/auth"
	"lectern/config"
)

// TestMain checks that no test leaves a goroutine behind, the served node
// included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var testSecret = strings.Repeat("0123456789abcdef", 4)

type result struct {
	code           int
	stdout, stderr string
}

func runCmd(args []string, env ...string) result {
	var out, errOut strings.Builder
	code := run(context.Background(), args, config.EnvList(env), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	verifier, err := auth.NewSigner([]byte(testSecret))
	require.NoError(t, err)
	tests := []struct {
		name string
		args []string
		want auth.Claims
		link string // expected second line before "#token=", "" for none
	}{
		{"teacher with link", []string{"--room", "math-1", "--role", "teacher", "--name", "Ada", "--title", "Algebra", "--url", "https://lectern.example.org/"},
			auth.Claims{Room: "math-1", Role: auth.RoleTeacher, Name: "Ada", Title: "Algebra"}, "https://lectern.example.org/room/math-1"},
		{"student", []string{"--room", "math-1", "--role", "student", "--name", "Bo"},
			auth.Claims{Room: "math-1", Role: auth.RoleStudent, Name: "Bo"}, ""},
		{"student invite", []string{"--room", "math 1", "--role", "student", "--invite", "--url", "http://127.0.0.1:8080"},
			auth.Claims{Room: "math 1", Role: auth.RoleStudent, Invite: true}, "http://127.0.0.1:8080/room/math%201"},
		{"operator of every class", []string{"--room", "*", "--role", "operator"},
			auth.Claims{Room: "*", Role: auth.RoleOperator}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCmd(append([]string{"token"}, tt.args...), "LECTERN_SECRET="+testSecret)
			require.Equal(t, exitOK, r.code, r.stderr)
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			c, err := verifier.Verify(lines[0])
			require.NoError(t, err)
			require.Equal(t, tt.want.Room, c.Room)
			require.Equal(t, tt.want.Role, c.Role)
			require.Equal(t, tt.want.Name, c.Name)
			require.Equal(t, tt.want.Title, c.Title)
			require.Equal(t, tt.want.Invite, c.Invite)
			require.NotEmpty(t, c.Participant)
			require.InDelta(t, time.Now().Add(3*time.Hour).Unix(), c.Expiry, 5, "the default ttl is 3h")
			if tt.link == "" {
				require.Len(t, lines, 1)
				return
			}
			require.Len(t, lines, 2)
			require.Equal(t, tt.link+"#token="+lines[0], lines[1])
		})
	}
}

func TestTokenTTL(t *testing.T) {
	t.Parallel()
	r := runCmd([]string{"token", "--room", "r", "--role", "teacher", "--ttl", "10m"}, "LECTERN_SECRET="+testSecret)
	require.Equal(t, exitOK, r.code, r.stderr)
	v, err := auth.NewSigner([]byte(testSecret))
	require.NoError(t, err)
	c, err := v.Verify(strings.TrimSpace(r.stdout))
	require.NoError(t, err)
	require.InDelta(t, time.Now().Add(10*time.Minute).Unix(), c.Expiry, 5)
}

// TestTokenSecretFile: without LECTERN_SECRET the token command uses, and
// creates, the same secret file as the server.
func TestTokenSecretFile(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	first := runCmd([]string{"token", "--room", "r", "--role", "teacher", "--data", data})
	require.Equal(t, exitOK, first.code, first.stderr)
	secret, err := auth.LoadOrCreateSecret(filepath.Join(data, "secret"))
	require.NoError(t, err)
	v, err := auth.NewSigner(secret)
	require.NoError(t, err)
	_, err = v.Verify(strings.TrimSpace(first.stdout))
	require.NoError(t, err)

	// LECTERN_DATA finds the same directory, and the file is reused.
	second := runCmd([]string{"token", "--room", "r", "--role", "student"}, "LECTERN_DATA="+data)
	require.Equal(t, exitOK, second.code, second.stderr)
	_, err = v.Verify(strings.TrimSpace(second.stdout))
	require.NoError(t, err)

	// So does a YAML file given by LECTERN_CONFIG.
	cfgFile := filepath.Join(t.TempDir(), "lectern.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("data: "+data+"\n"), 0o600))
	third := runCmd([]string{"token", "--room", "r", "--role", "student"}, "LECTERN_CONFIG="+cfgFile)
	require.Equal(t, exitOK, third.code, third.stderr)
	_, err = v.Verify(strings.TrimSpace(third.stdout))
	require.NoError(t, err)
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     []string
		code    int
		message string
	}{
		{"no room", []string{"--role", "teacher"}, nil, exitUsage, "--room is required"},
		{"no role", []string{"--room", "r"}, nil, exitUsage, "--role"},
		{"bad role", []string{"--room", "r", "--role", "admin"}, nil, exitUsage, `"admin"`},
		{"every class for a teacher", []string{"--room", "*", "--role", "teacher"}, nil, exitUsage, "operators only"},
		{"invite for a teacher", []string{"--room", "r", "--role", "teacher", "--invite"}, nil, exitUsage, "students only"},
		{"long name", []string{"--room", "r", "--role", "teacher", "--name", strings.Repeat("n", 65)}, nil, exitUsage, "64"},
		{"slash in room", []string{"--room", "a/b", "--role", "teacher"}, nil, exitUsage, "--room"},
		{"zero ttl", []string{"--room", "r", "--role", "teacher", "--ttl", "0s"}, nil, exitUsage, "--ttl"},
		{"bad url", []string{"--room", "r", "--role", "teacher", "--url", "lectern.example.org"}, nil, exitUsage, "--url"},
		{"link to every class", []string{"--room", "*", "--role", "operator", "--url", "http://x"}, nil, exitUsage, "--url"},
		{"unknown flag", []string{"--rooms", "r"}, nil, exitUsage, "-rooms"},
		{"stray argument", []string{"--room", "r", "--role", "teacher", "extra"}, nil, exitUsage, `"extra"`},
		{"short secret", []string{"--room", "r", "--role", "teacher"}, []string{"LECTERN_SECRET=short"}, exitFailure, "LECTERN_SECRET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.env
			if env == nil {
				env = []string{"LECTERN_SECRET=" + testSecret}
			}
			r := runCmd(append([]string{"token"}, tt.args...), env...)
			require.Equal(t, tt.code, r.code)
			require.Empty(t, r.stdout)
			require.Contains(t, r.stderr, tt.message)
		})
	}
}

func TestServeBadConfig(t *testing.T) {
	t.Parallel()
	badYAML := filepath.Join(t.TempDir(), "lectern.yaml")
	require.NoError(t, os.WriteFile(badYAML, []byte("htp: \":1\"\n"), 0o600))
	tests := []struct {
		name    string
		args    []string
		env     []string
		message string
	}{
		{"unknown flag", []string{"--port", "1"}, nil, "-port"},
		{"unknown flag after serve", []string{"serve", "--port", "1"}, nil, "-port"},
		{"bad flag value", []string{"--udp-port", "70000"}, nil, "udp_port 70000"},
		{"bad auth", []string{"serve", "--auth", "nobody"}, nil, `auth "nobody"`},
		{"bad environment", nil, []string{"LECTERN_TCP_PORT=x"}, "LECTERN_TCP_PORT"},
		{"unknown yaml key", []string{"--config", badYAML}, nil, `unknown key "htp"`},
		{"unknown command", []string{"serv"}, nil, `unknown command "serv"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCmd(tt.args, tt.env...)
			require.Equal(t, exitUsage, r.code)
			require.Contains(t, r.stderr, tt.message)
			require.True(t, strings.HasPrefix(r.stderr, "lectern: "), r.stderr)
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}} {
		r := runCmd(args)
		require.Equal(t, exitOK, r.code)
		require.Contains(t, r.stdout, "lectern token")
	}
	r := runCmd([]string{"serve", "--help"})
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stdout, "-udp-port")
	r = runCmd([]string{"token", "--help"})
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stdout, "-role")
	r = runCmd([]string{"version"})
	require.Equal(t, exitOK, r.code)
	require.True(t, strings.HasPrefix(r.stdout, "lectern "))
}

// lockedBuffer is written by the serving goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func serveArgs(t *testing.T, httpAddr string) []string {
	return []string{"--http", httpAddr, "--udp-port", "0", "--tcp-port", "0",
		"--public-ip", "127.0.0.1", "--data", filepath.Join(t.TempDir(), "data")}
}

// TestServeRunsUntilStopped runs the server command, reaches it at the
// URL it prints, then stops it as a signal would.
func TestServeRunsUntilStopped(t *testing.T) {
	t.Parallel()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	pr, pw := io.Pipe()
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, serveArgs(t, "127.0.0.1:0"), config.EnvList(nil), pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err, stderr.String())
	m := regexp.MustCompile(`^Lectern is running: open (http://127\.0\.0\.1:\d+)\n$`).FindStringSubmatch(line)
	require.NotNil(t, m, line)
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(m[1] + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	stop()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	require.Contains(t, stderr.String(), `"message":"lectern stopped"`, "logs are JSON when stderr is not a terminal")
}

func TestServePortInUse(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	var stdout strings.Builder
	var stderr lockedBuffer
	code := run(context.Background(), serveArgs(t, busy.Addr().String()), config.EnvList(nil), &stdout, &stderr)
	require.Equal(t, exitFailure, code)
	require.Empty(t, stdout.String())
	require.Contains(t, stderr.String(), "lectern: app: HTTP: listen tcp "+busy.Addr().String())
	require.Contains(t, stderr.String(), "already running?")
}
