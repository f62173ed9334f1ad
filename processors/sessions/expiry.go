package sessions

import (
	"context"
	"time"

	"github.com/lovoo/goka"

	"github.com/mcpstream/mcpstream/schemas"
)

// Idle expiry. goka has no timers, so two mechanisms share one rule
// (expired): a request for a session idle longer than Env.IdleTimeout is
// answered 404 and deletes the session (lazily, in log order with its other
// events), and a periodic sweep visits every session of the partitions this
// instance owns (goka visitors run inside the partition loop, serialized
// with messages) and deletes those idle too long. A deletion is a tombstone
// on the compacted table topic, so compaction frees the state for good.

// expireVisitor names the sweep's goka visitor.
const expireVisitor = "expire"

// expired reports whether a session has been idle longer than the timeout.
// A CLOSED session (DELETE) is kept for the same time, so a redelivered
// initialize cannot bring it back, then freed.
func expired(env Env, st *schemas.SessionState, now time.Time) bool {
	return env.IdleTimeout > 0 && st != nil && now.Sub(st.LastActivity) > env.IdleTimeout
}

// activityResolution is how stale LastActivity may get before a request
// that changes nothing else rewrites it: a small fraction of the idle
// timeout, so a session in use never looks idle.
func (env Env) activityResolution() time.Duration {
	if env.IdleTimeout > 0 && env.IdleTimeout/10 < ActivityResolution {
		return env.IdleTimeout / 10
	}
	return ActivityResolution
}

// sweepInterval is how often the sweep runs for a timeout: often enough
// that a session outlives its timeout by at most a quarter of it, at most
// once a minute.
func sweepInterval(timeout time.Duration) time.Duration {
	return min(max(timeout/4, 250*time.Millisecond), time.Minute)
}

// expire is the sweep's visitor: meta is the sweep's time.
func (p *Processor) expire(ctx goka.Context, meta any) {
	now, ok := meta.(time.Time)
	if !ok {
		return
	}
	st, _ := ctx.Value().(*schemas.SessionState)
	// Only the timeout matters here; building the whole Env (tool list)
	// per visited key would cost a sweep dearly.
	if st == nil || !expired(Env{IdleTimeout: p.cfg.IdleTimeout}, st, now) {
		return
	}
	p.log.Debug("session expired", "session", ctx.Key(), "idle", now.Sub(st.LastActivity).Round(time.Second), "state", st.State)
	ctx.Delete()
}

// sweep visits the owned partitions every interval until ctx is done. A
// visit that fails (a rebalance interrupts it) is retried at the next tick.
func (p *Processor) sweep(ctx context.Context, proc *goka.Processor) {
	t := time.NewTicker(sweepInterval(p.cfg.IdleTimeout))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if proc.StateReader().State() != goka.ProcStateRunning {
			continue
		}
		vctx, cancel := context.WithTimeout(ctx, time.Minute)
		n, err := proc.VisitAllWithStats(vctx, expireVisitor, time.Now())
		cancel()
		if err != nil && ctx.Err() == nil {
			p.log.Warn("idle-expiry sweep interrupted", "visited", n, "err", err)
		}
	}
}
