package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"lectern/auth"
	"lectern/config"
)

// tokenFlags are the flags of `lectern token`.
type tokenFlags struct {
	room, role, name    string
	title               string
	ttl                 time.Duration
	invite              bool
	data, secretFile    string
	configPath, baseURL string
}

func newTokenFlagSet(f *tokenFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("lectern token", flag.ContinueOnError)
	fs.StringVar(&f.room, "room", "", "class (room) id; an operator may use * for every class")
	fs.StringVar(&f.role, "role", "", "teacher, student or operator")
	fs.StringVar(&f.name, "name", "", "display name (up to 64 bytes)")
	fs.StringVar(&f.title, "title", "", "class title shown on the class page (up to 200 bytes)")
	fs.DurationVar(&f.ttl, "ttl", 3*time.Hour, "how long the token stays valid")
	fs.BoolVar(&f.invite, "invite", false, "student only: a class invite, which each student exchanges for a personal token after giving a name")
	secretFlags(fs, f)
	fs.StringVar(&f.baseURL, "url", "", "the server's address, e.g. https://lectern.example.org: also print the class link")
	return fs
}

// secretFlags are the flags that locate the secret, as signer reads them.
func secretFlags(fs *flag.FlagSet, f *tokenFlags) {
	fs.StringVar(&f.data, "data", "", "data directory holding the secret (env LECTERN_DATA, default ./lectern-data)")
	fs.StringVar(&f.secretFile, "secret-file", "", "secret file (env LECTERN_SECRET_FILE, default <data>/secret)")
	fs.StringVar(&f.configPath, "config", "", "YAML configuration file, for data and secret_file (env LECTERN_CONFIG)")
}

func tokenUsage(w io.Writer) {
	var f tokenFlags
	fs := newTokenFlagSet(&f)
	fs.SetOutput(w)
	fmt.Fprintln(w, "Usage: lectern token --room ROOM --role teacher|student|operator [flags]")
	fmt.Fprintln(w, "\nPrints a join token signed with the secret of LECTERN_SECRET or of the secret file")
	fmt.Fprintln(w, "(created if missing, as 'lectern serve' does). With --url, a second line holds the class link.")
	fmt.Fprintln(w, "\nFlags:")
	fs.PrintDefaults()
}

// token mints one token and prints it, and with --url the class link.
func token(args []string, env config.Env, stdout, stderr io.Writer) int {
	var f tokenFlags
	if code, done := parseSubcommand(newTokenFlagSet(&f), args, "token", tokenUsage, stdout, stderr); done {
		return code
	}
	claims, link, err := f.check()
	if err != nil {
		return tokenUsageError(stderr, err)
	}
	signer, err := f.signer(env)
	if err != nil {
		return fail(stderr, exitFailure, err)
	}
	tok, err := signer.Mint(claims, f.ttl)
	if err != nil {
		return fail(stderr, exitFailure, err)
	}
	fmt.Fprintln(stdout, tok)
	if link != "" {
		fmt.Fprintln(stdout, link+"#token="+tok)
	}
	return exitOK
}

func tokenUsageError(stderr io.Writer, err error) int { return usageError(stderr, "token", err) }

// check turns the flags into claims and, with --url, the class link
// up to its fragment. It explains what auth.Claims.Valid would only refuse.
func (f tokenFlags) check() (auth.Claims, string, error) {
	c := auth.Claims{Room: f.room, Role: auth.Role(f.role), Name: f.name, Title: f.title, Invite: f.invite}
	switch {
	case f.room == "":
		return c, "", errors.New("--room is required")
	case len(f.room) > 128 || !printable(f.room):
		return c, "", errors.New("--room: at most 128 bytes of printable text, without /")
	case c.Role != auth.RoleTeacher && c.Role != auth.RoleStudent && c.Role != auth.RoleOperator:
		return c, "", fmt.Errorf("--role %q: want teacher, student or operator", f.role)
	case f.room == auth.AllRooms && c.Role != auth.RoleOperator:
		return c, "", errors.New("--room * (every class) is for operators only")
	case f.invite && c.Role != auth.RoleStudent:
		return c, "", errors.New("--invite is for students only")
	case len(f.name) > 64:
		return c, "", errors.New("--name: at most 64 bytes")
	case f.ttl <= 0:
		return c, "", errors.New("--ttl must be positive")
	}
	if f.baseURL == "" {
		return c, "", nil
	}
	if f.room == auth.AllRooms {
		return c, "", errors.New("--url needs one class: a link to room * opens nothing")
	}
	base, err := url.Parse(strings.TrimSuffix(f.baseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return c, "", fmt.Errorf("--url %q: want http(s)://host[:port]", f.baseURL)
	}
	return c, base.String() + "/room/" + url.PathEscape(f.room), nil
}

// printable follows the class id rule of the protocol (signaling).
func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '/' {
			return false
		}
	}
	return utf8.ValidString(s)
}

// signer finds the secret as `lectern serve` would: LECTERN_SECRET, else
// the secret file (created if missing), located by the same configuration
// layers (YAML file, LECTERN_* environment, then these flags).
func (f tokenFlags) signer(env config.Env) (*auth.Signer, error) {
	cfg := config.Default()
	path := f.configPath
	if path == "" {
		path, _ = env(config.EnvConfig)
	}
	if path != "" {
		if err := cfg.LoadFile(path); err != nil {
			return nil, err
		}
	}
	if err := cfg.ApplyEnv(env); err != nil {
		return nil, err
	}
	if f.data != "" {
		cfg.Data = f.data
	}
	if f.secretFile != "" {
		cfg.SecretFile = f.secretFile
	}
	secret := []byte(cfg.Secret)
	if cfg.Secret == "" {
		var err error
		if secret, err = auth.LoadOrCreateSecret(cfg.SecretPath()); err != nil {
			return nil, err
		}
	}
	signer, err := auth.NewSigner(secret)
	if err != nil {
		return nil, fmt.Errorf("LECTERN_SECRET: %w", err)
	}
	return signer, nil
}
