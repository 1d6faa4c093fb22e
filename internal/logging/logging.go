// Package logging builds the zap logger every main uses and adapts it to the
// Temporal SDK's logger interface, so workflow, activity and SDK logs are the
// same structured stream.
package logging

import (
	"fmt"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a JSON zap logger at the given level ("debug", "info", "warn", "error").
func New(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "time"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil // a sampled-away error is a lost error
	return cfg.Build()
}

// Temporal adapts z to go.temporal.io/sdk/log.Logger.
func Temporal(z *zap.Logger) log.Logger {
	return &temporalLogger{z: z.WithOptions(zap.AddCallerSkip(1))}
}

type temporalLogger struct{ z *zap.Logger }

var _ log.WithLogger = (*temporalLogger)(nil)

func (l *temporalLogger) Debug(msg string, keyvals ...any) { l.z.Debug(msg, fields(keyvals)...) }
func (l *temporalLogger) Info(msg string, keyvals ...any)  { l.z.Info(msg, fields(keyvals)...) }
func (l *temporalLogger) Warn(msg string, keyvals ...any)  { l.z.Warn(msg, fields(keyvals)...) }
func (l *temporalLogger) Error(msg string, keyvals ...any) { l.z.Error(msg, fields(keyvals)...) }

func (l *temporalLogger) With(keyvals ...any) log.Logger {
	return &temporalLogger{z: l.z.With(fields(keyvals)...)}
}

// fields turns Temporal's alternating key/value list into zap fields. An odd
// trailing value is kept under "extra" rather than dropped.
func fields(keyvals []any) []zap.Field {
	out := make([]zap.Field, 0, (len(keyvals)+1)/2)
	for i := 0; i < len(keyvals); i += 2 {
		if i+1 == len(keyvals) {
			out = append(out, zap.Any("extra", keyvals[i]))
			break
		}
		key, ok := keyvals[i].(string)
		if !ok {
			key = fmt.Sprint(keyvals[i])
		}
		out = append(out, zap.Any(key, keyvals[i+1]))
	}
	return out
}
