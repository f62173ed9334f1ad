package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestCancelReachesRunningTool: a client that gives up on a call sends
// notifications/cancelled; it travels through the log to the executor
// holding the call, whose tool sees its context end. The call's recorded
// outcome is "cancelled", so a retry of the same request id is not run.
func TestCancelReachesRunningTool(t *testing.T) {
	b := startBroker(t, "")
	c := newCounter()
	c.delay.Store(int64(60 * time.Second))
	r := allInOne(t, b, "p1", c)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := connect(t, ctx, nil, r.ready.MCPURL, "2025-11-25")
	defer cs.Close()

	callCtx, callCancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(callCtx, &mcp.CallToolParams{Name: "count", Arguments: map[string]any{"tag": "slow"}})
		errc <- err
	}()
	waitFor(t, 10*time.Second, "tool body started", func() bool { return c.started.Load() == 1 })
	start := time.Now()
	callCancel() // the go-sdk client sends notifications/cancelled
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("CallTool after cancel: %v, want context.Canceled", err)
	}
	waitFor(t, 10*time.Second, "tool saw the cancellation", func() bool { return c.cancelled.Load() == 1 })
	t.Logf("cancellation reached the tool %v after the client cancelled", time.Since(start).Round(time.Millisecond))
	if n := c.total.Load(); n != 0 {
		t.Fatalf("tool completed %d times, want 0", n)
	}

	// Another call on the same session runs normally.
	c.delay.Store(0)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "count", Arguments: map[string]any{"tag": "after"}})
	if err != nil || res.IsError {
		t.Fatalf("call after a cancellation: %v %+v", err, res)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPerToolTimeout: --tool-timeouts bounds one tool without touching the
// others; the caller gets an isError result naming the limit.
func TestPerToolTimeout(t *testing.T) {
	b := startBroker(t, "")
	c := newCounter()
	c.delay.Store(int64(5 * time.Second))
	cfg := roleConfig(b, "p1", c)
	cfg.Processor, cfg.Executor, cfg.Gateway = true, true, true
	cfg.ToolTimeouts = map[string]time.Duration{"count": 300 * time.Millisecond}
	r := startRole(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := connect(t, ctx, nil, r.ready.MCPURL, "2025-11-25")
	defer cs.Close()
	start := time.Now()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "count", Arguments: map[string]any{"tag": "slow"}})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); !res.IsError || !strings.Contains(textOf(t, res), "timed out after 300ms") || took > 3*time.Second {
		t.Fatalf("slow tool after %v: isError=%v %q, want a timeout after 300ms", took, res.IsError, textOf(t, res))
	}
	// Another tool keeps the global timeout (5 minutes).
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_simple_text"})
	if err != nil || res.IsError {
		t.Fatalf("other tool: %v %+v", err, res)
	}
}
