package deploy

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"lectern/config"
)

// dockerfile is the parsed deploy/Dockerfile: its instructions, with
// continuation lines joined, in order.
type dockerfile []instruction

type instruction struct {
	cmd  string // FROM, RUN, ... in capitals
	args string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open("Dockerfile")
	require.NoError(t, err)
	defer f.Close()
	var out dockerfile
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	require.NoError(t, sc.Err())
	return out
}

// finalStage is the instructions after the last FROM.
func (d dockerfile) finalStage() dockerfile {
	last := 0
	for i, in := range d {
		if in.cmd == "FROM" {
			last = i
		}
	}
	return d[last:]
}

func (d dockerfile) all(cmd string) []string {
	var out []string
	for _, in := range d {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// buildCommand is the RUN instruction that builds the binary, split into
// its environment assignments and the go command's arguments.
func (d dockerfile) buildCommand(t *testing.T) (env, args []string) {
	t.Helper()
	for _, run := range d.all("RUN") {
		if !strings.Contains(run, "go build") {
			continue
		}
		words := shellWords(t, run)
		for len(words) > 0 && regexp.MustCompile(`^[A-Z_]+=`).MatchString(words[0]) {
			env, words = append(env, words[0]), words[1:]
		}
		require.Equal(t, "go", words[0], "the build RUN is `[VAR=value...] go build ...`: %s", run)
		return env, words[1:]
	}
	t.Fatal("the Dockerfile has no RUN ... go build")
	return nil, nil
}

// shellWords splits a command line as sh does for plain words and double
// or single quotes; anything else (pipes, $, ;) fails the test, since the
// test could not run it faithfully.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	require.NotRegexp(t, "[;|&$`<>]", s, "the build command must be a plain command")
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	require.Zero(t, quote, "unterminated quote in %s", s)
	if inWord {
		words = append(words, w.String())
	}
	return words
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildOut  []byte
	buildDir  string
)

// lecternBinary builds lectern with the Dockerfile's own command, from
// the repository root as the Dockerfile's WORKDIR holds it, once per test
// binary; the file lands in a directory removed by TestMain.
func lecternBinary(t *testing.T) string {
	t.Helper()
	env, args := readDockerfile(t).buildCommand(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "lectern-deploy-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "lectern")
		a := append([]string(nil), args...)
		for i := range a {
			if i > 0 && a[i-1] == "-o" {
				a[i] = buildBin
			}
		}
		cmd := exec.Command("go", a...)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), env...)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	require.NoError(t, buildErr, "%s", buildOut)
	return buildBin
}

// imageEnv is the environment the image's final stage sets.
func imageEnv(t *testing.T) map[string]string {
	t.Helper()
	envs := map[string]string{}
	for _, e := range readDockerfile(t).finalStage().all("ENV") {
		for _, w := range shellWords(t, e) {
			k, v, ok := strings.Cut(w, "=")
			require.True(t, ok, "ENV in the key=value form: %s", e)
			envs[k] = v
		}
	}
	return envs
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// TestDockerfileBuildsAStaticBinary runs the Dockerfile's go build and
// checks what it makes: a static executable (no interpreter, no dynamic
// section: it runs on a distroless base) that answers --help and version.
func TestDockerfileBuildsAStaticBinary(t *testing.T) {
	d := readDockerfile(t)
	env, args := d.buildCommand(t)
	require.Contains(t, env, "CGO_ENABLED=0")
	require.Equal(t, "build", args[0])
	require.Contains(t, args, "-o")
	require.Equal(t, "./cmd/lectern", args[len(args)-1])

	bin := lecternBinary(t)
	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "the binary needs a dynamic loader")
		require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "the binary is dynamically linked")
	}

	out, err := exec.Command(bin, "--help").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "lectern [serve] [flags]")
	out, err = exec.Command(bin, "serve", "--help").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "-udp-port")
	out, err = exec.Command(bin, "version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Regexp(t, `^lectern \S+ go1\.`, string(out))
}

// TestDockerfileImage checks the image around the binary: the builder's
// Go is go.mod's, the final stage runs as a non-root user, exposes the
// default ports, and its environment is a valid configuration.
func TestDockerfileImage(t *testing.T) {
	d := readDockerfile(t)
	mod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	require.NotNil(t, goVer)
	require.Regexp(t, `^golang:`+regexp.QuoteMeta(string(goVer[1]))+`[-.]`, d.all("FROM")[0])

	final := d.finalStage()
	users := final.all("USER")
	require.NotEmpty(t, users, "the final stage must set USER")
	uid, _, _ := strings.Cut(users[len(users)-1], ":")
	require.NotContains(t, []string{"0", "root"}, uid)
	n, err := strconv.Atoi(uid)
	require.NoError(t, err, "USER by number, so that runAsNonRoot can check it")
	require.Positive(t, n)

	def := config.Default()
	_, httpPort, _ := strings.Cut(def.HTTP, ":")
	want := []string{httpPort + "/tcp", strconv.Itoa(def.UDPPort) + "/udp", strconv.Itoa(def.TCPPort) + "/tcp"}
	require.ElementsMatch(t, want, strings.Fields(strings.Join(final.all("EXPOSE"), " ")))

	entry := final.all("ENTRYPOINT")
	require.Len(t, entry, 1)
	bin := regexp.MustCompile(`^\["([^"]+)"\]$`).FindStringSubmatch(entry[0])
	require.NotNil(t, bin, "ENTRYPOINT in exec form")
	copied := false
	for _, c := range final.all("COPY") {
		copied = copied || strings.HasSuffix(c, " "+bin[1])
	}
	require.True(t, copied, "the final stage copies the binary to %s", bin[1])

	cfg := loadEnv(t, imageEnv(t))
	require.Equal(t, "/var/lib/lectern", cfg.Data)
	for _, v := range final.all("VOLUME") {
		require.Contains(t, v, cfg.Data, "the data directory is the volume")
	}
}
