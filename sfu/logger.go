package sfu

import (
	"fmt"

	"github.com/pion/logging"
	"github.com/rs/zerolog"
)

// NewLoggerFactory bridges pion's logging into a zerolog logger. pion logs
// per connection and sometimes per packet at debug and trace, so the
// bridge drops everything below level (the engine uses warn unless told
// otherwise). Each pion scope becomes a "pion" field.
func NewLoggerFactory(log zerolog.Logger, level zerolog.Level) logging.LoggerFactory {
	return &loggerFactory{log: log, level: level}
}

type loggerFactory struct {
	log   zerolog.Logger
	level zerolog.Level
}

func (f *loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return &pionLogger{log: f.log.With().Str("pion", scope).Logger(), level: f.level}
}

// pionLogger implements logging.LeveledLogger on zerolog. Formatting is
// done only when the level is enabled, so disabled levels cost nothing.
type pionLogger struct {
	log   zerolog.Logger
	level zerolog.Level
}

func (l *pionLogger) emit(lvl zerolog.Level, msg string) {
	if lvl < l.level {
		return
	}
	l.log.WithLevel(lvl).Msg(msg)
}

func (l *pionLogger) emitf(lvl zerolog.Level, format string, args ...any) {
	if lvl < l.level {
		return
	}
	l.log.WithLevel(lvl).Msg(fmt.Sprintf(format, args...))
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
