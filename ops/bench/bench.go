package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Defaults applied by Run to zero-valued Config fields.
const (
	DefaultSessions = 8
	DefaultDuration = 10 * time.Second
	DefaultTool     = "test_simple_text"
	DefaultWarmup   = time.Second
	// DefaultProtocolVersion is pinned because the go-sdk v1.8.0 client
	// otherwise probes for 2026-07-28 first. The stateful reference handler
	// declines and lands on 2025-11-25, but a server under test that accepted
	// 2026-07-28 would run the sessionless protocol, and the comparison would
	// no longer be like for like.
	DefaultProtocolVersion = "2025-11-25"
)

const (
	// connectTimeout bounds opening all sessions, so an unreachable URL fails
	// the run instead of hanging before the clock even starts.
	connectTimeout = 10 * time.Second
	// drainGrace is how long a call started inside the window may run past its
	// end. Longer than any sane tool call, short enough that a server which
	// stops answering cannot hold Run open; calls cut off by it are errors.
	drainGrace = 2 * time.Second
	// maxPrealloc caps the per-worker latency buffer so a long Duration does
	// not reserve memory for calls that a real server will never complete.
	maxPrealloc = 1 << 20
)

// Config describes one load run. The zero value of every field except URL
// selects a default.
type Config struct {
	// URL is the server's Streamable HTTP endpoint, for example
	// http://127.0.0.1:8080/mcp. Required. Run sends traffic nowhere else:
	// proxies from the environment are ignored and redirects are refused.
	URL string
	// Sessions is the number of concurrent MCP sessions; each keeps exactly
	// one tools/call in flight, so it is also the concurrency. Zero means 8.
	Sessions int
	// Duration is the length of the measured window. Zero means 10s.
	Duration time.Duration
	// Tool is the tool every call invokes. Empty means "test_simple_text",
	// the conformance suite's cheapest tool, which StartReference serves.
	Tool string
	// Args are the tool arguments sent with every call; nil sends {}.
	// Run only reads the map, but it must not be modified during the run.
	Args map[string]any
	// Warmup is run before the measured window and not recorded, so that
	// connection pools, lazily built caches and the heap settle first.
	// Zero means 1s; a negative value disables the warmup.
	Warmup time.Duration
	// ProtocolVersion is offered in initialize; the server may negotiate a
	// lower one, which Result.Protocol reports. Empty means 2025-11-25.
	ProtocolVersion string
	// Logger receives progress and the first error of each session. Nil
	// discards.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return c, fmt.Errorf("bench: parsing URL %q: %w", c.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return c, fmt.Errorf("bench: URL %q: want an absolute http(s) URL", c.URL)
	}
	if c.Sessions < 0 || c.Duration < 0 {
		return c, fmt.Errorf("bench: negative Sessions (%d) or Duration (%s)", c.Sessions, c.Duration)
	}
	if c.Sessions == 0 {
		c.Sessions = DefaultSessions
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Tool == "" {
		c.Tool = DefaultTool
	}
	switch {
	case c.Warmup == 0:
		c.Warmup = DefaultWarmup
	case c.Warmup < 0:
		c.Warmup = 0
	}
	if c.ProtocolVersion == "" {
		c.ProtocolVersion = DefaultProtocolVersion
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Run drives load against cfg.URL and reports what it measured.
//
// It first opens cfg.Sessions sessions (not timed), then lets every session
// call cfg.Tool back to back for cfg.Warmup plus cfg.Duration. Only calls that
// start inside the measured window are recorded. Calls still in flight when
// the window closes are allowed to finish (for at most two seconds), so
// Elapsed can slightly exceed Duration.
//
// If ctx is cancelled mid-run, Run returns what it recorded so far together
// with an error wrapping ctx.Err().
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	log := cfg.Logger

	var dials atomic.Int64
	httpClient := newHTTPClient(cfg.Sessions, &dials)
	defer httpClient.CloseIdleConnections()

	sessions, err := connectAll(ctx, cfg, httpClient)
	if err != nil {
		return Result{}, err
	}
	defer closeAll(sessions)
	protocol := sessions[0].InitializeResult().ProtocolVersion
	log.Info("bench: sessions open", "url", cfg.URL, "sessions", len(sessions), "protocol", protocol)

	start := time.Now()
	window := start.Add(cfg.Warmup)
	end := window.Add(cfg.Duration)
	callCtx, cancel := context.WithDeadline(ctx, end.Add(drainGrace))
	defer cancel()

	prealloc := min(maxPrealloc, max(1024, int(cfg.Duration.Seconds()*5000)))
	workers := make([]worker, len(sessions))
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.id = i
		w.cs = sessions[i]
		w.latencies = make([]time.Duration, 0, prealloc)
		wg.Go(func() { w.run(ctx, callCtx, cfg, window, end) })
	}
	wg.Wait()
	finished := time.Now()

	res := summarize(workers, max(0, finished.Sub(window)))
	res.Protocol = protocol
	res.Conns = int(dials.Load())
	log.Info("bench: done", "result", res.String())
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("bench: run against %s interrupted: %w", cfg.URL, err)
	}
	return res, nil
}

// newHTTPClient returns a client whose pool can keep every session's
// connections alive between calls; with net/http's default of two idle
// connections per host, most calls would pay for a fresh TCP handshake and
// the benchmark would measure connection setup instead of the server.
func newHTTPClient(sessions int, dials *atomic.Int64) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// A proxy from the environment would both distort latency and send
	// traffic somewhere other than the configured URL.
	tr.Proxy = nil
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return dialer.DialContext(ctx, network, addr)
	}
	// Each session holds one connection for its POSTs and, while open, one
	// for the standalone SSE GET stream.
	tr.MaxIdleConnsPerHost = 2 * sessions
	tr.MaxIdleConns = max(tr.MaxIdleConns, 2*sessions)
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			return fmt.Errorf("bench: refusing redirect to %s", req.URL.Redacted())
		},
	}
}

// connectAll opens the sessions concurrently, because initialize is a full
// round trip and opening hundreds of sessions one by one would be slow.
func connectAll(ctx context.Context, cfg Config, httpClient *http.Client) ([]*mcp.ClientSession, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpstream-bench", Version: "1"}, nil)
	opts := &mcp.ClientSessionOptions{ProtocolVersion: cfg.ProtocolVersion}
	sessions := make([]*mcp.ClientSession, cfg.Sessions)
	errs := make([]error, cfg.Sessions)
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Go(func() {
			t := &mcp.StreamableClientTransport{Endpoint: cfg.URL, HTTPClient: httpClient}
			sessions[i], errs[i] = client.Connect(ctx, t, opts)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(sessions)
		return nil, fmt.Errorf("bench: opening %d sessions to %s: %w", cfg.Sessions, cfg.URL, err)
	}
	return sessions, nil
}

// closeAll closes sessions concurrently: each Close sends a DELETE, and a
// slow server would otherwise make teardown take Sessions times as long.
func closeAll(sessions []*mcp.ClientSession) {
	var wg sync.WaitGroup
	for _, cs := range sessions {
		if cs != nil {
			wg.Go(func() { _ = cs.Close() })
		}
	}
	wg.Wait()
}

// worker is one session's call loop. Each worker owns its latency slice so
// recording a call needs no synchronisation; Run merges them afterwards.
type worker struct {
	id        int
	cs        *mcp.ClientSession
	latencies []time.Duration
	errors    int
}

// run calls the tool until end. parent tells a cancelled run apart from a
// call cut off by callCtx's drain deadline: the former is the caller's doing
// and not counted, the latter means the server did not answer in time.
func (w *worker) run(parent, callCtx context.Context, cfg Config, window, end time.Time) {
	for {
		t0 := time.Now()
		if !t0.Before(end) || callCtx.Err() != nil {
			return
		}
		// Fresh params per call because CallTool fills in missing fields.
		res, err := w.cs.CallTool(callCtx, &mcp.CallToolParams{Name: cfg.Tool, Arguments: cfg.Args})
		d := time.Since(t0)
		if err == nil && res.IsError {
			err = fmt.Errorf("tool %q returned isError: %s", cfg.Tool, firstText(res))
		}
		if parent.Err() != nil {
			return
		}
		measured := !t0.Before(window)
		if err == nil {
			if measured {
				w.latencies = append(w.latencies, d)
			}
			continue
		}
		lost := errors.Is(err, mcp.ErrConnectionClosed)
		// A session lost during warmup still counts, so a server that drops
		// sessions can never produce a clean-looking run.
		if measured || lost {
			w.errors++
		}
		if w.errors == 1 || lost {
			cfg.Logger.Warn("bench: call failed", "session", w.id, "lost", lost, "err", err)
		}
		if lost {
			return
		}
	}
}

func firstText(res *mcp.CallToolResult) string {
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			return t.Text
		}
	}
	return ""
}
