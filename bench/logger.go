package bench

import (
	"github.com/pion/logging"
	"github.com/rs/zerolog"
)

// loggerFactory bridges pion's loggers into zerolog. Only errors pass at
// warning level: pion's debug output is per packet in places, and its
// warnings (pings before a candidate pair, streams closing at teardown)
// are the normal life of hundreds of peer connections.
type loggerFactory struct{ log zerolog.Logger }

func (f loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With().Str("pion", scope).Logger()}
}

type pionLogger struct{ log zerolog.Logger }

func (l pionLogger) Trace(string)                      {}
func (l pionLogger) Tracef(string, ...interface{})     {}
func (l pionLogger) Debug(string)                      {}
func (l pionLogger) Debugf(string, ...interface{})     {}
func (l pionLogger) Info(string)                       {}
func (l pionLogger) Infof(string, ...interface{})      {}
func (l pionLogger) Warn(msg string)                   { l.log.Debug().Msg(msg) }
func (l pionLogger) Warnf(f string, a ...interface{})  { l.log.Debug().Msgf(f, a...) }
func (l pionLogger) Error(msg string)                  { l.log.Error().Msg(msg) }
func (l pionLogger) Errorf(f string, a ...interface{}) { l.log.Error().Msgf(f, a...) }
