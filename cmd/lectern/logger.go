package main

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"lectern/config"
)

// newLogger builds the process's one logger from the configuration; it is
// injected everywhere from here (no global logger).
func newLogger(cfg config.Config, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		level = zerolog.InfoLevel // unreachable: Validate checked it
	}
	tty := isTerminal(w)
	out := w
	if cfg.LogFormat == config.LogConsole || cfg.LogFormat == config.LogAuto && tty {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !tty}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

// isTerminal reports whether w is a character device (a terminal), using
// only the standard library.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
