package processors

import (
	"fmt"
	"log/slog"

	"github.com/lovoo/goka"
)

// GokaLogger adapts slog to goka's logger once, for every group. goka's
// informational messages (partition assignment, recovery) go to Info so
// rebalances are visible in operators' logs.
func GokaLogger(l *slog.Logger) goka.Logger { return gokaLogger{l.With("component", "goka")} }

type gokaLogger struct{ l *slog.Logger }

func (g gokaLogger) Print(args ...any)                 { g.l.Info(fmt.Sprint(args...)) }
func (g gokaLogger) Println(args ...any)               { g.l.Info(fmt.Sprint(args...)) }
func (g gokaLogger) Printf(format string, args ...any) { g.l.Info(fmt.Sprintf(format, args...)) }
