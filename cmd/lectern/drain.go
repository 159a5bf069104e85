package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"lectern/auth"
	"lectern/config"
	"lectern/signaling"
)

// drainFlags are the flags of `lectern drain`.
type drainFlags struct {
	baseURL  string
	wait     bool
	undo     bool
	timeout  time.Duration
	interval time.Duration
	secret   tokenFlags // only data, secret-file and config: where the secret is
}

func newDrainFlagSet(f *drainFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("lectern drain", flag.ContinueOnError)
	fs.StringVar(&f.baseURL, "url", "http://127.0.0.1:8080", "the node to drain, as its HTTP address")
	fs.BoolVar(&f.wait, "wait", false, "wait until no teacher or student is left on the node")
	fs.BoolVar(&f.undo, "undo", false, "end draining: the node takes classes and students again")
	fs.DurationVar(&f.timeout, "timeout", 0, "with --wait, give up after this long (0: wait as long as it takes)")
	fs.DurationVar(&f.interval, "interval", 5*time.Second, "with --wait, how often to ask the node")
	secretFlags(fs, &f.secret)
	return fs
}

func drainUsage(w io.Writer) {
	var f drainFlags
	fs := newDrainFlagSet(&f)
	fs.SetOutput(w)
	fmt.Fprintln(w, "Usage: lectern drain [--url http://NODE:8080] [--wait] [flags]")
	fmt.Fprintln(w, "\nTells a node to take no new classes or students; in a cluster they go to other nodes,")
	fmt.Fprintln(w, "and so do its classes, one every 2 s. With --wait it returns once the node is empty.")
	fmt.Fprintln(w, "It signs an operator token with the node's secret (LECTERN_SECRET or the secret file).")
	fmt.Fprintln(w, "\nFlags:")
	fs.PrintDefaults()
}

// drain asks a node to drain and, with --wait, waits until it is empty.
func drain(ctx context.Context, args []string, env config.Env, stdout, stderr io.Writer) int {
	var f drainFlags
	if code, done := parseSubcommand(newDrainFlagSet(&f), args, "drain", drainUsage, stdout, stderr); done {
		return code
	}
	base, err := url.Parse(strings.TrimSuffix(f.baseURL, "/"))
	switch {
	case err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "":
		return drainUsageError(stderr, fmt.Errorf("--url %q: want http(s)://host[:port]", f.baseURL))
	case f.interval <= 0 || f.timeout < 0:
		return drainUsageError(stderr, errors.New("--interval must be positive and --timeout not negative"))
	case f.undo && f.wait:
		return drainUsageError(stderr, errors.New("--undo and --wait: pick one"))
	}
	signer, err := f.secret.signer(env)
	if err != nil {
		return fail(stderr, exitFailure, err)
	}
	// Short-lived: a leaked copy from a log is of little use.
	tok, err := signer.Mint(auth.Claims{Room: auth.AllRooms, Role: auth.RoleOperator, Name: "lectern drain"}, time.Hour)
	if err != nil {
		return fail(stderr, exitFailure, err)
	}
	d := drainClient{url: base.String() + "/api/drain", token: tok,
		// One connection per request: a poll every few seconds keeps
		// nothing open between them.
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	method := http.MethodPost
	if f.undo {
		method = http.MethodDelete
	}
	st, err := d.call(ctx, method)
	if err != nil {
		return fail(stderr, exitFailure, err)
	}
	fmt.Fprintln(stdout, drainLine(st))
	if !f.wait {
		return exitOK
	}
	return d.wait(ctx, f, st, stdout, stderr)
}

func drainUsageError(stderr io.Writer, err error) int { return usageError(stderr, "drain", err) }

// wait polls the node every f.interval until nobody is left on it.
func (d drainClient) wait(ctx context.Context, f drainFlags, st signaling.DrainState, stdout, stderr io.Writer) int {
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	t := time.NewTicker(f.interval)
	defer t.Stop()
	last := st
	for st.Participants > 0 {
		select {
		case <-ctx.Done():
			return fail(stderr, exitFailure, fmt.Errorf("stopped waiting: %s", drainLine(last)))
		case <-t.C:
		}
		var err error
		if st, err = d.call(ctx, http.MethodGet); err != nil {
			// The node may be briefly busy; a stopped node ends the wait
			// with the context.
			fmt.Fprintf(stderr, "lectern drain: %v\n", err)
			continue
		}
		if !st.Draining {
			return fail(stderr, exitFailure, errors.New("the node was told to take classes again"))
		}
		if st != last {
			fmt.Fprintln(stdout, drainLine(st))
			last = st
		}
	}
	fmt.Fprintln(stdout, "drained: no teacher or student left")
	return exitOK
}

// drainLine says in words what the node answered.
func drainLine(s signaling.DrainState) string {
	verb := "draining"
	if !s.Draining {
		verb = "taking classes"
	}
	return fmt.Sprintf("%s: %d participants (%d students) in %d classes", verb, s.Participants, s.Students, s.Classes)
}

type drainClient struct {
	url, token string
	http       *http.Client
}

func (d drainClient) call(ctx context.Context, method string) (signaling.DrainState, error) {
	var st signaling.DrainState
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, d.url, nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := d.http.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return st, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s %s: %s: %s", method, d.url, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("%s %s: %v", method, d.url, err)
	}
	return st, nil
}
