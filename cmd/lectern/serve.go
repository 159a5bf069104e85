package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"syscall"

	"lectern/app"
	"lectern/config"
)

// serve runs a node until ctx ends, then shuts it down gracefully.
func serve(ctx context.Context, args []string, env config.Env, stdout, stderr io.Writer) int {
	cfg, err := config.Load(args, env)
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(stdout)
		return exitOK
	}
	if err != nil {
		fail(stderr, exitUsage, err)
		fmt.Fprintln(stderr, "lectern: run 'lectern serve --help' for the flags")
		return exitUsage
	}
	log := newLogger(cfg, stderr)
	debug.SetGCPercent(cfg.GCPercent)
	a, err := app.New(cfg, log)
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	if err := a.Start(); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			err = fmt.Errorf("%w (is Lectern already running? pick other ports with --http, --udp-port, --tcp-port)", err)
		}
		return fail(stderr, exitFailure, err)
	}
	fmt.Fprintf(stdout, "Lectern is running: open %s\n", a.URL())
	if cfg.Auth == config.AuthTokens {
		fmt.Fprintf(stdout, "Auth is tokens: make class links with 'lectern token --room ROOM --role teacher%s --url %s'\n",
			tokenDataFlag(cfg), a.URL())
	}
	<-ctx.Done()
	log.Info().Stringer("timeout", cfg.ShutdownTimeout).Msg("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		return fail(stderr, exitFailure, err)
	}
	return exitOK
}

// tokenDataFlag is the --data flag `lectern token` needs to find this
// server's secret file, when it is not the default one.
func tokenDataFlag(cfg config.Config) string {
	if cfg.Secret != "" || cfg.SecretPath() == config.Default().SecretPath() {
		return ""
	}
	if cfg.SecretFile != "" {
		return " --secret-file " + cfg.SecretFile
	}
	return " --data " + cfg.Data
}
