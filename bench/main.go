package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/rs/zerolog"
)

// Exit statuses of Main, as for the other lectern commands.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Main is `lectern bench`: it parses args, runs (or sweeps), prints the
// table to stdout and writes the JSON and HTML reports. It stops by itself
// when ctx ends (cmd/lectern ends it on SIGINT or SIGTERM).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return fail(stderr, err)
	}
	o.Logger = zerolog.New(zerolog.ConsoleWriter{Out: stderr, NoColor: true}).Level(zerolog.WarnLevel).
		With().Timestamp().Logger()
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return fail(stderr, err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(stderr, err)
		}
		defer pprof.StopCPUProfile()
	}
	if o.Sweep {
		return mainSweep(ctx, o, stdout, stderr)
	}
	res, err := Run(ctx, o)
	if res != nil {
		printResult(stdout, res)
		if werr := writeReports(&o, res, nil); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func mainSweep(ctx context.Context, o Options, stdout, stderr io.Writer) int {
	sr, err := Sweep(ctx, o, func(r *Result) { printResult(stdout, r) })
	if sr != nil {
		printSweep(stdout, sr)
		if werr := writeReports(&o, nil, sr); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

// fail prints err, one "lectern bench: " line per line, and returns the
// exit status its kind calls for.
func fail(w io.Writer, err error) int {
	fmt.Fprintf(w, "lectern bench: %v\n", err)
	if errors.Is(err, ErrUsage) {
		fmt.Fprintln(w, "lectern bench: run 'lectern bench --help' for the flags")
		return exitUsage
	}
	return exitFailure
}

// SweepResult is the report of a sweep.
type SweepResult struct {
	Criteria string    `json:"criteria"`
	Largest  int       `json:"largest_held"` // 0: not even the first step held
	Steps    []*Result `json:"steps"`
}

// Sweep runs o.SweepStart students, then SweepStep more each time, up to
// SweepMax, each step against a fresh local server (or a new room of the
// server at URL), until a step does not hold. each, if not nil, is called
// with every step's result.
func Sweep(ctx context.Context, o Options, each func(*Result)) (*SweepResult, error) {
	o.Sweep = true
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c, err := loadClip(o.IVF, o.Ogg)
	if err != nil {
		return nil, err
	}
	sr := &SweepResult{Criteria: fmt.Sprintf("every student connected, video loss <= %.0f%%, p99 latency <= %.0f ms",
		SweepMaxLoss*100, SweepMaxP99Milli)}
	for n := o.SweepStart; n <= o.SweepMax; n += o.SweepStep {
		step := o
		step.Students, step.Room = n, fmt.Sprintf("%s-%d", o.Room, n)
		res, err := runOnce(ctx, &step, c)
		if res != nil {
			sr.Steps = append(sr.Steps, res)
			if each != nil {
				each(res)
			}
		}
		if err != nil && !errors.Is(err, ErrNoStudent) {
			return sr, err
		}
		if res == nil || !res.Held {
			break
		}
		sr.Largest = n
	}
	return sr, nil
}

// writeReports writes the JSON and HTML files o names.
func writeReports(o *Options, res *Result, sr *SweepResult) error {
	var v any = res
	if sr != nil {
		v = sr
	}
	var errs []error
	if o.JSON != "" {
		errs = append(errs, writeFile(o.JSON, func(w io.Writer) error { return writeJSON(w, v) }))
	}
	if o.HTML != "" {
		errs = append(errs, writeFile(o.HTML, func(w io.Writer) error { return writeHTML(w, res, sr) }))
	}
	return errors.Join(errs...)
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: report: %w", err)
	}
	if err := errors.Join(write(f), f.Close()); err != nil {
		return fmt.Errorf("bench: report %s: %w", path, err)
	}
	return nil
}
