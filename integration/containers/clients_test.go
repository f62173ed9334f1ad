//go:build containers

package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	sdkjsonrpc "github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpstream/mcpstream/jsonrpc"
)

// The tool every scenario calls: a fixed answer, so every result can be
// checked.
const (
	tool     = "test_simple_text"
	wantText = "This is a simple text response for testing."
)

// connect opens a go-sdk client session on endpoint.
// version "" lets the SDK choose (2026-07-28, stateless); "2025-11-25"
// opens a stateful session the processors keep.
func connect(ctx context.Context, hc *http.Client, endpoint, version string) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "mcpstream-containers", Version: "1"}, nil)
	tr := &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1}
	cs, err := c.Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", endpoint, err)
	}
	return cs, nil
}

// tally is what a batch of calls came to.
type tally struct {
	calls, answered, wrong, errors atomic.Int64
	// interrupted counts the errors that are the platform's designed answer
	// to an executor dying (or cut off) mid-job on a tool not marked
	// idempotent (JSON-RPC -31003: run at most once, never again); they are
	// also in errors.
	interrupted atomic.Int64
	mu          sync.Mutex
	firstErr    error
	maxLatency  time.Duration
}

func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("calls=%d answered=%d wrong=%d errors=%d (interrupted %d) slowest=%v", t.calls.Load(), t.answered.Load(), t.wrong.Load(), t.errors.Load(),
		t.interrupted.Load(), t.maxLatency.Round(time.Millisecond))
}

func (t *tally) fail(err error) {
	t.errors.Add(1)
	if interrupted(err) {
		t.interrupted.Add(1)
	}
	t.mu.Lock()
	if t.firstErr == nil {
		t.firstErr = err
	}
	t.mu.Unlock()
}

// interrupted reports whether err is the platform's answer to a call whose
// executor stopped while it held the call, the tool not being idempotent:
// JSON-RPC -31003 (CodeCallInterrupted), run at most once and never again.
//
// Images built before the code moved out of the go-sdk's reserved range
// answered -32003, which that client turns into mcp.ErrConnectionClosed
// with the server's message as text; the message check covers them.
func interrupted(err error) bool {
	var we *sdkjsonrpc.Error
	if errors.As(err, &we) {
		return we.Code == jsonrpc.CodeCallInterrupted
	}
	return errors.Is(err, mcp.ErrConnectionClosed) && strings.Contains(err.Error(), "tool call interrupted: ")
}

// call makes one tools/call and checks its result.
func (t *tally) call(ctx context.Context, cs *mcp.ClientSession, timeout time.Duration) {
	t.calls.Add(1)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool})
	if d := time.Since(start); err == nil {
		t.mu.Lock()
		t.maxLatency = max(t.maxLatency, d)
		t.mu.Unlock()
	}
	if err != nil {
		t.fail(err)
		return
	}
	t.answered.Add(1)
	if res.IsError || len(res.Content) != 1 {
		t.wrong.Add(1)
		return
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != wantText {
		t.wrong.Add(1)
	}
}

// load runs perSession calls on every session concurrently (one goroutine
// per session, calls in sequence) and, while it runs, calls during(done)
// with the number of calls finished so far available.
func load(ctx context.Context, sessions []*mcp.ClientSession, perSession int, timeout time.Duration, tl *tally) {
	var wg sync.WaitGroup
	for _, cs := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perSession {
				if ctx.Err() != nil {
					return
				}
				tl.call(ctx, cs, timeout)
			}
		}()
	}
	wg.Wait()
}

// Protocol versions.
const (
	stateful  = "2025-11-25"
	stateless = "" // the SDK's latest, 2026-07-28
)

// openSessions opens n sessions of version spread round-robin over the
// gateways.
func openSessions(t *testing.T, ctx context.Context, gws []string, n int, version string) []*mcp.ClientSession {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	out := make([]*mcp.ClientSession, n)
	for i := range out {
		cs, err := connect(ctx, hc, gws[i%len(gws)], version)
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		out[i] = cs
		t.Cleanup(func() { _ = cs.Close() })
	}
	return out
}

// waitRows waits until query (a count) returns want, up to d.
func waitRows(ctx context.Context, dsn, query string, want int64, d time.Duration) (int64, time.Duration, error) {
	start := time.Now()
	var got int64 = -1
	var last error
	for time.Since(start) < d {
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			err = c.QueryRow(ctx, query).Scan(&got)
			c.Close(ctx)
		}
		last = err
		if err == nil && got == want {
			return got, time.Since(start), nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return got, time.Since(start), fmt.Errorf("%s: %d after %v, want %d (last error: %v)", query, got, d, want, last)
}

// executions sums mcpstream_executor_jobs_total of tool over the given
// processors' /metrics (each process counts its own since it started).
func executions(ctx context.Context, ns ...*node) (int64, error) {
	return executionsOf(ctx, tool, ns...)
}

// executionsOf is executions for any tool name.
func executionsOf(ctx context.Context, tool string, ns ...*node) (int64, error) {
	var sum int64
	for _, n := range ns {
		u, err := n.url(ctx)
		if err != nil {
			return 0, err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, fmt.Errorf("metrics of %s: %w", n.name, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "mcpstream_executor_jobs_total{") || !strings.Contains(line, `tool="`+tool+`"`) {
				continue
			}
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return 0, fmt.Errorf("metrics of %s: %q: %w", n.name, line, err)
			}
			sum += int64(v)
		}
	}
	return sum, nil
}

// loadUntil keeps every session calling until stop is closed; it returns
// when every session's last call has finished.
func loadUntil(ctx context.Context, sessions []*mcp.ClientSession, stop <-chan struct{}, timeout time.Duration, tl *tally) {
	var wg sync.WaitGroup
	for _, cs := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				select {
				case <-stop:
					return
				default:
				}
				tl.call(ctx, cs, timeout)
				time.Sleep(20 * time.Millisecond) // paced: the failure lands mid-stream
			}
		}()
	}
	wg.Wait()
}

// failover is the load balancer in front of the gateways: a request goes
// to the gateway its URL names and, when that one refuses or answers 502,
// 503 or 504, to the next. Re-sending is safe: a tools/call is deduplicated
// by (session, JSON-RPC id).
type failover struct {
	hosts     []string
	base      http.RoundTripper
	failovers atomic.Int64
}

func newFailover(endpoints []string) *failover {
	f := &failover{base: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, e := range endpoints {
		u, err := url.Parse(e)
		if err != nil {
			panic(err)
		}
		f.hosts = append(f.hosts, u.Host)
	}
	return f
}

func (f *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	first := slices.Index(f.hosts, req.URL.Host)
	if first < 0 {
		first = 0
	}
	var lastErr error
	for i := range 3 * len(f.hosts) {
		h := f.hosts[(first+i)%len(f.hosts)]
		r := req.Clone(req.Context())
		r.URL.Host, r.Host = h, h
		if req.GetBody != nil {
			b, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = b
		}
		resp, err := f.base.RoundTrip(r)
		if err == nil {
			switch resp.StatusCode {
			case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
				resp.Body.Close()
				err = fmt.Errorf("%s answered %s", h, resp.Status)
			default:
				return resp, nil
			}
		}
		lastErr = err
		f.failovers.Add(1)
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(time.Duration(i) * 100 * time.Millisecond):
		}
	}
	return nil, lastErr
}

// openBalanced opens n sessions of version behind a failover balancer,
// each preferring gateway i % len(gws); the go-sdk client resumes a broken
// stream with Last-Event-ID (MaxRetries left at its default).
func openBalanced(t *testing.T, ctx context.Context, gws []string, n int, version string) ([]*mcp.ClientSession, *failover) {
	t.Helper()
	lb := newFailover(gws)
	hc := &http.Client{Transport: lb}
	out := make([]*mcp.ClientSession, n)
	for i := range out {
		c := mcp.NewClient(&mcp.Implementation{Name: "mcpstream-containers", Version: "1"}, nil)
		tr := &mcp.StreamableClientTransport{Endpoint: gws[i%len(gws)], HTTPClient: hc}
		cs, err := c.Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: version})
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		out[i] = cs
		t.Cleanup(func() { _ = cs.Close() })
	}
	return out, lb
}
