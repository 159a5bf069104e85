// Command lectern runs a Lectern node (`lectern serve`, the default),
// mints join tokens (`lectern token`), measures a server (`lectern
// bench`) and drains a node before it stops (`lectern drain`). It is the only place that reads the
// process's arguments, environment and signals; everything else receives
// a config.Config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"lectern/bench"
	"lectern/config"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the server or the command failed while running
	exitUsage   = 2 // bad flags, environment or configuration file
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling: a second
		// Ctrl-C ends a shutdown that takes too long.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], config.EnvList(os.Environ()), os.Stdout, os.Stderr))
}

// run is the whole command, with its inputs passed in so tests can call
// it: ctx ends when the process is asked to stop.
func run(ctx context.Context, args []string, env config.Env, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		return serve(ctx, args, env, stdout, stderr)
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], env, stdout, stderr)
	case "token":
		return token(args[1:], env, stdout, stderr)
	case "bench":
		return bench.Main(ctx, args[1:], stdout, stderr)
	case "drain":
		return drain(ctx, args[1:], env, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionLine())
		return exitOK
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "lectern: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Lectern: live lessons in the browser.

Usage:
  lectern [serve] [flags]   run the server (the default command)
  lectern token [flags]     print a signed join token (and a class link)
  lectern bench [flags]     measure how many students a server holds
  lectern drain [flags]     move a node's classes elsewhere, take no new ones, wait until it is empty
  lectern version           print the version

Run 'lectern serve --help', 'lectern token --help', 'lectern bench --help' or
'lectern drain --help' for their flags.
`)
}

func versionLine() string {
	version := "(devel)"
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		goVersion = bi.GoVersion
	}
	return "lectern " + version + " " + goVersion
}

// parseSubcommand parses the flags of `lectern NAME`; done says the
// command ends there with code: after printing its help (usage), or on a
// bad flag or a stray argument.
func parseSubcommand(fs *flag.FlagSet, args []string, name string, usage func(io.Writer), stdout, stderr io.Writer) (code int, done bool) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return exitOK, true
		}
		return usageError(stderr, name, err), true
	}
	if fs.NArg() > 0 {
		return usageError(stderr, name, fmt.Errorf("unexpected argument %q", fs.Arg(0))), true
	}
	return 0, false
}

// usageError prints a bad usage of `lectern NAME` and where the flags are.
func usageError(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "lectern %s: %v\n", name, err)
	fmt.Fprintf(stderr, "lectern %s: run 'lectern %s --help' for the flags\n", name, name)
	return exitUsage
}

// fail prints err, one "lectern: " line per joined error, and returns code.
func fail(w io.Writer, code int, err error) int {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "lectern: %s\n", line)
	}
	return code
}
