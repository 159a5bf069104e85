package sfu

import (
	"fmt"
	"strings"
	"sync"

	"github.com/pion/logging"
	"github.com/rs/zerolog"
)

// NewLoggerFactory bridges pion's logging into a zerolog logger. pion logs
// per connection and sometimes per packet at debug and trace, so the
// bridge drops everything below level (the engine uses warn unless told
// otherwise). Each pion scope becomes a "pion" field.
func NewLoggerFactory(log zerolog.Logger, level zerolog.Level) logging.LoggerFactory {
	return newLoggerFactory(log, level)
}

func newLoggerFactory(log zerolog.Logger, level zerolog.Level) *loggerFactory {
	return &loggerFactory{log: log, level: level, scopes: map[string]*pionLogger{}}
}

// loggerFactory hands out one logger per scope. pion asks for a dozen
// loggers for every peer connection (ICE, DTLS, SRTP, mux...), always with
// the same few scope names; a zerolog context costs half a kilobyte, so
// building one per call was about 6 KB per student. A pionLogger is
// immutable, hence safe to share between peer connections.
type loggerFactory struct {
	log   zerolog.Logger
	level zerolog.Level

	mu     sync.Mutex
	scopes map[string]*pionLogger
}

func (f *loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.scopes[scope]
	if !ok {
		l = &pionLogger{log: f.log.With().Str("pion", scope).Logger(), level: f.level}
		f.scopes[scope] = l
	}
	return l
}

// pionLogger implements logging.LeveledLogger on zerolog. Formatting is
// done only when the level is enabled, so disabled levels cost nothing.
type pionLogger struct {
	log   zerolog.Logger
	level zerolog.Level
}

// routineWarnings are the beginnings of pion warnings that describe
// Lectern's normal operation: the ICE UDP socket binds the unspecified
// address on purpose (one port for every interface); the rest is what a
// peer connection says when it closes before it connected (a WHEP or WHIP
// client that gave up, a session refused or deleted at once), or while
// pion still accepts its streams: ordinary teardown, once per session.
// Each is a beginning and, when not empty, words the message must also
// hold.
var routineWarnings = []struct{ prefix, holds string }{
	{"UDPMuxDefault should not listening on unspecified address", ""},
	{"Failed to accept RTP", ""},
	{"Failed to accept RTCP", ""},
	{"Failed to start manager: connecting canceled by caller", ""},
	{"Failed to start connectivity checks", "agent is closed"},
	{"Failed to ping without candidate pairs", ""},
	{"undeclaredMediaProcessor failed to open Srtp", "has not started"},
	{"undeclaredMediaProcessor failed to open Srtcp", "has not started"},
	{"Failed to read from candidate", "closed pipe"},
}

// demote turns routineWarnings into debug lines, so that a warning in the
// log always means something.
func demote(lvl zerolog.Level, msg string) zerolog.Level {
	if lvl != zerolog.WarnLevel {
		return lvl
	}
	for _, w := range routineWarnings {
		if strings.HasPrefix(msg, w.prefix) && strings.Contains(msg, w.holds) {
			return zerolog.DebugLevel
		}
	}
	return lvl
}

func (l *pionLogger) emit(lvl zerolog.Level, msg string) {
	if lvl < l.level {
		return
	}
	if lvl = demote(lvl, msg); lvl >= l.level {
		l.log.WithLevel(lvl).Msg(msg)
	}
}

func (l *pionLogger) emitf(lvl zerolog.Level, format string, args ...any) {
	if lvl < l.level {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if lvl = demote(lvl, msg); lvl >= l.level {
		l.log.WithLevel(lvl).Msg(msg)
	}
}

func (l *pionLogger) Trace(msg string)                  { l.emit(zerolog.TraceLevel, msg) }
func (l *pionLogger) Tracef(format string, args ...any) { l.emitf(zerolog.TraceLevel, format, args...) }
func (l *pionLogger) Debug(msg string)                  { l.emit(zerolog.DebugLevel, msg) }
func (l *pionLogger) Debugf(format string, args ...any) { l.emitf(zerolog.DebugLevel, format, args...) }
func (l *pionLogger) Info(msg string)                   { l.emit(zerolog.InfoLevel, msg) }
func (l *pionLogger) Infof(format string, args ...any)  { l.emitf(zerolog.InfoLevel, format, args...) }
func (l *pionLogger) Warn(msg string)                   { l.emit(zerolog.WarnLevel, msg) }
func (l *pionLogger) Warnf(format string, args ...any)  { l.emitf(zerolog.WarnLevel, format, args...) }
func (l *pionLogger) Error(msg string)                  { l.emit(zerolog.ErrorLevel, msg) }
func (l *pionLogger) Errorf(format string, args ...any) { l.emitf(zerolog.ErrorLevel, format, args...) }
