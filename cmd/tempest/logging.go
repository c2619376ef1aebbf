package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
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
