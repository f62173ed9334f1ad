package redis

import (
	"context"
	"fmt"
	"log/slog"

	goredis "github.com/redis/go-redis/v9"
)

// RouteClientLogs sends go-redis' own log lines to l at debug level.
// go-redis logs through one process-wide logger (to stderr by default) and
// prints a line for every failed dial: during an outage that is a line per
// cache request. The projector and the cache report outages themselves, once
// per transition, so the library's lines are detail. Call it once, from
// main or the platform, like the other library log adapters.
func RouteClientLogs(l *slog.Logger) {
	goredis.SetLogger(clientLogger{l})
}

type clientLogger struct{ l *slog.Logger }

func (c clientLogger) Printf(ctx context.Context, format string, v ...any) {
	if c.l.Enabled(ctx, slog.LevelDebug) {
		c.l.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
	}
}
