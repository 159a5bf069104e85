package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvConfig names the YAML file when --config is not given.
const EnvConfig = "LECTERN_CONFIG"

// Env looks up an environment variable, like os.LookupEnv.
type Env func(name string) (string, bool)

// EnvList makes an Env of "NAME=value" entries, as os.Environ returns them.
// A later entry wins over an earlier one, as in a process environment.
func EnvList(environ []string) Env {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// lookup treats an empty variable as unset, so `LECTERN_PUBLIC_IP=$IP` with
// IP unset in a compose file or unit leaves the lower layers in effect.
func (e Env) lookup(name string) (string, bool) {
	if e == nil {
		return "", false
	}
	v, ok := e(name)
	return v, ok && v != ""
}

// Load builds the configuration of `lectern serve`: Default, then the YAML
// file named by --config or LECTERN_CONFIG, then LECTERN_* variables, then
// the flags in args, then Validate. For -h/--help it returns an error
// matching flag.ErrHelp; print Usage then.
func Load(args []string, env Env) (Config, error) {
	set, path, err := parseFlags(args)
	if err != nil {
		return Config{}, err
	}
	if path == "" {
		path, _ = env.lookup(EnvConfig)
	}
	cfg := Default()
	if path != "" {
		if err := cfg.LoadFile(path); err != nil {
			return Config{}, err
		}
	}
	if err := cfg.ApplyEnv(env); err != nil {
		return Config{}, err
	}
	for _, f := range cfg.fields() {
		if v, ok := set[f.flag]; ok && f.flag != "" {
			if err := f.value.Set(v); err != nil {
				return Config{}, fmt.Errorf("%w: --%s %q: %v", ErrInvalid, f.flag, v, err)
			}
		}
	}
	return cfg, cfg.Validate()
}

// parseFlags parses args into a scratch Config, only to learn which flags
// are set (applied last, over YAML and environment) and where --config
// points (read first).
func parseFlags(args []string) (set map[string]string, path string, err error) {
	scratch := Default()
	fs := newFlagSet(&scratch, &path)
	fs.SetOutput(io.Discard) // the caller prints one clear line, not the whole usage
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, "", fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	set = map[string]string{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	return set, path, nil
}

func newFlagSet(c *Config, configPath *string) *flag.FlagSet {
	fs := flag.NewFlagSet("lectern serve", flag.ContinueOnError)
	fs.StringVar(configPath, "config", "", "YAML configuration file (env "+EnvConfig+")")
	for _, f := range c.fields() {
		if f.flag != "" {
			fs.Var(f.value, f.flag, f.usage+" (env "+f.env+")")
		}
	}
	return fs
}

// Usage writes the flags of `lectern serve`, their variables and defaults.
func Usage(w io.Writer) {
	c := Default()
	var path string
	fs := newFlagSet(&c, &path)
	fs.SetOutput(w)
	fmt.Fprintln(w, "Usage: lectern serve [flags]")
	fmt.Fprintln(w, "\nPrecedence: flags > LECTERN_* environment > YAML file (--config) > defaults.")
	fmt.Fprintln(w, "\nFlags:")
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nEnvironment only:")
	for _, f := range c.fields() {
		if f.flag == "" {
			fmt.Fprintf(w, "  %s\n    \t%s\n", f.env, f.usage)
		}
	}
}

// ApplyEnv sets every field whose LECTERN_* variable is set and not empty.
func (c *Config) ApplyEnv(env Env) error {
	var errs []error
	for _, f := range c.fields() {
		v, ok := env.lookup(f.env)
		if !ok {
			continue
		}
		if err := f.value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %v", ErrInvalid, f.env, err))
		}
	}
	return errors.Join(errs...)
}

// LoadFile overlays the YAML file at path on c.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFile, err)
	}
	if err := c.LoadYAML(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// LoadYAML overlays one YAML document on c. Keys not set keep their
// values; an unknown key is an error (a misspelt key silently ignored
// would leave a setting at its default without anyone noticing).
func (c *Config) LoadYAML(r io.Reader) error {
	src, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFile, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	next := *c
	err = dec.Decode(&next)
	if errors.Is(err, io.EOF) {
		return nil // an empty file sets nothing
	}
	if err != nil {
		return yamlError(err, src)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: want one YAML document, found more", ErrFile)
	}
	// An empty sequence ("nats: []") is no list at all, as in Default.
	for _, l := range []*[]string{&next.NATS, &next.NATSRoutes, &next.TrustedProxies, &next.TURNAllow} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	*c = next
	return nil
}

var (
	unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type`)
	badValue     = regexp.MustCompile(`^line (\d+): cannot unmarshal !!\w+ (.*) into .*$`)
)

// yamlError rewrites yaml.v3's messages into Lectern's words, naming the
// key of each bad value (yaml.v3 only gives its line).
func yamlError(err error, src []byte) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%w: %v", ErrFile, err)
	}
	var errs []error
	for _, msg := range te.Errors {
		m := unknownField.FindStringSubmatch(msg)
		switch {
		case m == nil:
			if v := badValue.FindStringSubmatch(msg); v != nil {
				msg = fmt.Sprintf("%s %s (line %s): wrong type", keyAtLine(src, v[1]), v[2], v[1])
			}
			errs = append(errs, fmt.Errorf("%w: %s", ErrInvalid, msg))
		case m[2] == "secret":
			errs = append(errs, fmt.Errorf("%w %q (line %s): the secret comes only from LECTERN_SECRET or secret_file", ErrUnknownKey, m[2], m[1]))
		default:
			errs = append(errs, fmt.Errorf("%w %q (line %s)", ErrUnknownKey, m[2], m[1]))
		}
	}
	return errors.Join(errs...)
}

// keyAtLine finds the top-level key whose value is on line (as text).
func keyAtLine(src []byte, line string) string {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil || len(doc.Content) == 0 {
		return "value"
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if strconv.Itoa(m.Content[i+1].Line) == line {
			return m.Content[i].Value
		}
	}
	return "value"
}
