package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// logConfig is how a server command logs: --log-format (TEMPEST_LOG_FORMAT) and the level
// (TEMPEST_LOG_LEVEL; serve and worker also take --log-level).
type logConfig struct {
	format, level string
}

func (c *logConfig) flags(fs *flag.FlagSet, withLevel bool) {
	fs.StringVar(&c.format, "log-format", envOr("TEMPEST_LOG_FORMAT", "text"), "log format: text or json ($TEMPEST_LOG_FORMAT)")
	c.level = envOr("TEMPEST_LOG_LEVEL", "info")
	if withLevel {
		fs.StringVar(&c.level, "log-level", c.level, "log level: debug, info, warn or error ($TEMPEST_LOG_LEVEL); one line per REST or event API request at info")
	}
}

// logger builds the logger, or says which setting to fix.
func (c logConfig) logger(out io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", c.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.format) {
	case "text":
		return slog.New(slog.NewTextHandler(out, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(out, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", c.format)
}

// observability is a server command's logger and, from the OTEL_* environment, its tracer
// provider (nil: tracing off); stop flushes the spans still buffered.
func (c logConfig) observability(ctx context.Context, out io.Writer) (*slog.Logger, trace.TracerProvider, func(), error) {
	logger, err := c.logger(out)
	if err != nil {
		return nil, nil, nil, err
	}
	tp, stop, err := tracerProvider(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return logger, tp, stop, nil
}
