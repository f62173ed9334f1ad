package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpstream/mcpstream/tools"
)

// Options are the dependencies of a Provider. The zero value is usable.
type Options struct {
	// Logger receives the provider's logs (and the upstream's stderr at
	// debug level). Nil discards them.
	Logger *slog.Logger
	// OnToolsChanged is called after the upstream announced
	// notifications/tools/list_changed and a fresh listing differs from the
	// cached one. The platform uses it to refresh its tools.Registry. It is
	// called from a goroutine of its own, never concurrently with itself.
	OnToolsChanged func()
}

// Provider serves the tools of one upstream MCP server. It implements
// tools.Provider and tools.Namespaced. It is safe for concurrent use; Close
// it to stop every upstream session and process.
type Provider struct {
	cfg     Config
	log     *slog.Logger
	client  *mcp.Client
	http    *http.Transport // shared by the sessions of an HTTP upstream
	breaker *breaker
	pool    pool
	changed func()

	refreshMu  sync.Mutex // one listing at a time, published in order
	tools      atomic.Pointer[[]tools.Tool]
	listDirty  atomic.Bool
	refetching atomic.Bool
	closeOnce  sync.Once
}

var (
	_ tools.Provider   = (*Provider)(nil)
	_ tools.Namespaced = (*Provider)(nil)
)

// New validates cfg, fills in defaults and returns a provider. It starts
// nothing: the first ListTools or CallTool opens the first upstream session.
func New(cfg Config, opts Options) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("upstream: new %q: %w", cfg.Name, err)
	}
	cfg = cfg.withDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("upstream", cfg.Name)
	p := &Provider{cfg: cfg, log: log, breaker: newBreaker(cfg.Breaker, nil), changed: opts.OnToolsChanged}
	p.client = mcp.NewClient(&mcp.Implementation{Name: "mcpstream", Version: "upstream"}, &mcp.ClientOptions{
		Logger: log,
		// No roots, sampling or elicitation: nothing would answer them.
		Capabilities:           &mcp.ClientCapabilities{},
		ToolListChangedHandler: p.onToolListChanged,
	})
	if cfg.HTTP != nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Every session keeps a standalone SSE GET open and POSTs calls:
		// allow two connections per session without churn.
		t.MaxIdleConnsPerHost = 2*cfg.Pool.Size + 2
		p.http = t
	}
	p.pool = pool{
		size:           cfg.Pool.Size,
		acquireTimeout: cfg.Timeouts.Acquire.D(),
		idleTimeout:    cfg.Timeouts.Idle.D(),
		dial:           p.dial,
		close:          p.closeSession,
		newRouter:      func() *router { return newRouter(log) },
		log:            log,
		now:            time.Now,
	}
	p.pool.init()
	return p, nil
}

// NewAll builds one provider per config. On error it closes those already
// built.
func NewAll(cfgs []Config, opts Options) ([]*Provider, error) {
	out := make([]*Provider, 0, len(cfgs))
	for _, c := range cfgs {
		p, err := New(c, opts)
		if err != nil {
			for _, q := range out {
				_ = q.Close()
			}
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Name is the upstream's configured name.
func (p *Provider) Name() string { return p.cfg.Name }

// Namespace is the upstream's name: its tools are exposed as name.tool.
func (p *Provider) Namespace() string { return p.cfg.Name }

// Config returns the configuration in use, defaults filled in.
func (p *Provider) Config() Config { return p.cfg }

// Stats reports the pool and breaker state.
func (p *Provider) Stats() Stats {
	s := p.pool.stats()
	s.Breaker = p.breaker.State()
	return s
}

// ListTools returns the upstream's tools under their own names, listing
// them from the upstream only when nothing is cached yet. The cache is
// renewed by Refresh and when the upstream announces a change.
func (p *Provider) ListTools(ctx context.Context) ([]tools.Tool, error) {
	if cached := p.tools.Load(); cached != nil {
		return append([]tools.Tool(nil), (*cached)...), nil
	}
	if _, err := p.Refresh(ctx); err != nil {
		return nil, err
	}
	return append([]tools.Tool(nil), (*p.tools.Load())...), nil
}

// Refresh lists the upstream's tools now (through a pooled session, like a
// stateless call, breaker included) and replaces the cache. It reports
// whether the list differs from the cached one.
func (p *Provider) Refresh(ctx context.Context) (changed bool, err error) {
	p.refreshMu.Lock()
	defer p.refreshMu.Unlock()
	var listed []tools.Tool
	err = p.do(ctx, "", "list", p.cfg.Timeouts.List.D(), func(ctx context.Context, s *session) error {
		var err error
		listed, err = listAll(ctx, s.cs)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("upstream %q: list tools: %w", p.cfg.Name, err)
	}
	return p.publish(listed), nil
}

// publish caches a listing and reports whether it changed anything.
func (p *Provider) publish(listed []tools.Tool) bool {
	old := p.tools.Load()
	p.tools.Store(&listed)
	if old == nil {
		return true
	}
	a, _ := json.Marshal(*old)
	b, _ := json.Marshal(listed)
	return !bytes.Equal(a, b)
}

// maxListPages bounds pagination: a server that keeps returning cursors
// must not keep us listing forever.
const maxListPages = 1000

func listAll(ctx context.Context, cs *mcp.ClientSession) ([]tools.Tool, error) {
	var out []tools.Tool
	params := &mcp.ListToolsParams{}
	for range maxListPages {
		res, err := cs.ListTools(ctx, params)
		if err != nil {
			return nil, err
		}
		for _, t := range res.Tools {
			tt, err := convertTool(t)
			if err != nil {
				return nil, err
			}
			out = append(out, tt)
		}
		if res.NextCursor == "" {
			return out, nil
		}
		params = &mcp.ListToolsParams{Cursor: res.NextCursor}
	}
	return nil, fmt.Errorf("tools/list still paginating after %d pages", maxListPages)
}

// convertTool goes through JSON so schemas and annotations pass through as
// the upstream wrote them (tools.Tool keeps them raw).
func convertTool(t *mcp.Tool) (tools.Tool, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return tools.Tool{}, fmt.Errorf("encode tool %q: %w", t.Name, err)
	}
	var out tools.Tool
	if err := json.Unmarshal(b, &out); err != nil {
		return tools.Tool{}, fmt.Errorf("decode tool %q: %w", t.Name, err)
	}
	if len(out.InputSchema) == 0 || string(out.InputSchema) == "null" {
		out.InputSchema = json.RawMessage(`{"type":"object"}`)
	}
	return out, nil
}

// onToolListChanged runs in the SDK's notification goroutine: it must not
// block, so the re-listing runs on its own goroutine, coalescing bursts (every
// new server-everything session announces a change right after initialize).
func (p *Provider) onToolListChanged(_ context.Context, req *mcp.ToolListChangedRequest) {
	cs, _ := req.GetSession().(*mcp.ClientSession)
	if cs == nil {
		return
	}
	p.listDirty.Store(true)
	if p.refetching.CompareAndSwap(false, true) {
		go p.refetch(cs)
	}
}

func (p *Provider) refetch(cs *mcp.ClientSession) {
	for {
		for p.listDirty.Swap(false) {
			if p.tools.Load() == nil {
				continue // nobody listed yet; the first ListTools will
			}
			// The session that announced the change is alive and
			// answers; listing on it costs no pool slot.
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeouts.List.D())
			listed, err := listAll(ctx, cs)
			cancel()
			if err != nil {
				p.log.Warn("re-listing tools after list_changed failed", "err", err)
				continue
			}
			p.refreshMu.Lock()
			changed := p.publish(listed)
			p.refreshMu.Unlock()
			if changed && p.changed != nil {
				p.changed()
			}
		}
		p.refetching.Store(false)
		// A notification between the last Swap and the Store found
		// refetching set and left; pick it up.
		if !p.listDirty.Load() || !p.refetching.CompareAndSwap(false, true) {
			return
		}
	}
}

// CallTool calls the tool on the upstream. Calls of a downstream session go
// to that session's own upstream session (unless the upstream is
// Stateless); calls without one take a pooled session for their duration.
// Progress (when call.ProgressToken is set) and log notifications of the
// upstream are forwarded to n in the order the upstream sent them, all
// before CallTool returns.
func (p *Provider) CallTool(ctx context.Context, call tools.Call, n tools.Notifier) (*tools.Result, error) {
	if n == nil {
		n = discard{}
	}
	key := call.SessionID
	if p.cfg.Stateless {
		key = ""
	}
	var res *mcp.CallToolResult
	err := p.do(ctx, key, "call", p.cfg.Timeouts.Call.D(), func(ctx context.Context, s *session) error {
		params := &mcp.CallToolParams{Name: call.Name}
		if len(call.Arguments) > 0 && string(call.Arguments) != "null" {
			params.Arguments = call.Arguments
		}
		sink := s.router.begin(ctx, n, call.ProgressToken != nil)
		if sink.token != "" {
			params.SetProgressToken(sink.token)
		}
		var err error
		res, err = s.cs.CallTool(ctx, params)
		s.router.end(sink)
		return err
	})
	if err != nil {
		return nil, err
	}
	return convertResult(res)
}

func convertResult(r *mcp.CallToolResult) (*tools.Result, error) {
	out := &tools.Result{IsError: r.IsError, Content: make([]json.RawMessage, 0, len(r.Content))}
	for _, c := range r.Content {
		b, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("encode upstream content: %w", err)
		}
		out.Content = append(out.Content, b)
	}
	if r.StructuredContent != nil {
		b, err := json.Marshal(r.StructuredContent)
		if err != nil {
			return nil, fmt.Errorf("encode upstream structured content: %w", err)
		}
		out.StructuredContent = b
	}
	if len(r.Meta) > 0 {
		b, err := json.Marshal(r.Meta)
		if err != nil {
			return nil, fmt.Errorf("encode upstream _meta: %w", err)
		}
		out.Meta = b
	}
	return out, nil
}

// do runs fn on an upstream session under the breaker, the pool and the
// timeout, and sorts what went wrong:
//
//	the upstream answered (result or JSON-RPC error)  -> breaker success
//	connect/transport failure, missed deadline          -> breaker failure, session discarded
//	caller cancelled, pool saturated, provider closed   -> breaker untouched
func (p *Provider) do(ctx context.Context, key, op string, timeout time.Duration, fn func(context.Context, *session) error) error {
	t, err := p.breaker.allow()
	if err != nil {
		var oe *openError
		var retry time.Duration
		if errors.As(err, &oe) {
			retry = oe.retryAfter
		}
		return &UnavailableError{Upstream: p.cfg.Name, Op: op, RetryAfter: retry, Err: err}
	}
	s, err := p.pool.acquire(ctx, key)
	if err != nil {
		var follower *followerError
		switch {
		case ctx.Err() != nil:
			t.done(outcomeIgnore, nil)
			return ctx.Err()
		case errors.Is(err, ErrPoolExhausted), errors.Is(err, ErrClosed):
			t.done(outcomeIgnore, nil)
			return &UnavailableError{Upstream: p.cfg.Name, Op: op, Err: err}
		case errors.As(err, &follower):
			t.done(outcomeIgnore, nil)
			return &UnavailableError{Upstream: p.cfg.Name, Op: "connect", Err: follower.err}
		default:
			t.done(outcomeFailure, err)
			return &UnavailableError{Upstream: p.cfg.Name, Op: "connect", Err: err}
		}
	}
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, timeout)
	}
	err = fn(cctx, s)
	deadline := errors.Is(cctx.Err(), context.DeadlineExceeded)
	cancel()

	var rpcErr *jsonrpc.Error
	switch {
	case err == nil:
		t.done(outcomeSuccess, nil)
		p.pool.release(s, false)
		return nil
	case errors.As(err, &rpcErr):
		t.done(outcomeSuccess, nil)
		p.pool.release(s, false)
		return mapRPCError(p.cfg.Name, rpcErr)
	case errors.Is(ctx.Err(), context.Canceled):
		// The client cancelled; the SDK told the upstream. Nothing to
		// learn about the upstream's health.
		t.done(outcomeIgnore, nil)
		p.pool.release(s, false)
		return ctx.Err()
	case deadline:
		// A session that missed a deadline may be wedged (a hung
		// process): discard it, so the next call (or probe) gets a fresh one.
		err = fmt.Errorf("%w (%s)", ErrTimeout, op)
		t.done(outcomeFailure, err)
		p.pool.release(s, true)
		return &UnavailableError{Upstream: p.cfg.Name, Op: op, Err: err}
	default:
		t.done(outcomeFailure, err)
		p.pool.release(s, true)
		return &UnavailableError{Upstream: p.cfg.Name, Op: op, Err: err}
	}
}

// dialAttempts bounds the handshakes one dial of an HTTP upstream makes
// when it is the connection, not the upstream, that failed them.
const dialAttempts = 3

// dial opens the MCP session of s: a process or an HTTP session, plus the
// handshake, within the connect timeout.
//
// Over HTTP, a handshake whose request got no response or whose response
// broke off is tried again, at most dialAttempts times in all, on a
// transport of its own with no connection from before. Why: after a network
// partition the shared transport keeps idle keep-alive connections the peer
// has forgotten; reusing one for initialize (a POST, which net/http does not
// replay once written) ends in "connection reset by peer" although the
// upstream is fine. Only the last failure reaches the caller, and so the
// breaker. A handshake may be repeated: at worst the upstream keeps an
// unused session from an initialize whose answer was lost, until it
// expires it. Tool calls are never repeated (see do).
func (p *Provider) dial(ctx context.Context, s *session) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeouts.Connect.D())
	defer cancel()
	if p.cfg.Stdio != nil {
		proc, err := startProcess(p.cfg.Stdio, p.log)
		if err != nil {
			return err
		}
		s.proc = proc
		transport := &mcp.IOTransport{Reader: newTapReader(proc.stdout, s.router.dispatch), Writer: proc.stdin}
		cs, err := p.connect(ctx, transport)
		if err != nil {
			s.proc.stop(p.cfg.Timeouts.Shutdown.D())
			s.proc = nil
			return err
		}
		p.opened(s, cs)
		return nil
	}
	base := p.http
	for attempt := 1; ; attempt++ {
		var lost atomic.Pointer[error]
		tt := &tapTransport{base: base, headers: p.cfg.HTTP.Headers, onMessage: s.router.dispatch,
			onConnError: func(err error) {
				lost.CompareAndSwap(nil, &err)
				p.connLost(err)
			}}
		cs, err := p.connect(ctx, &mcp.StreamableClientTransport{Endpoint: p.cfg.HTTP.URL, HTTPClient: &http.Client{Transport: tt}})
		if err == nil {
			if base != p.http {
				s.http = base
			}
			p.opened(s, cs)
			return nil
		}
		if base != p.http {
			base.CloseIdleConnections()
		}
		connErr := lost.Load()
		if connErr == nil || ctx.Err() != nil || attempt == dialAttempts {
			if connErr != nil && attempt > 1 {
				return fmt.Errorf("%w (attempt %d of %d on a fresh connection)", err, attempt, dialAttempts)
			}
			return err
		}
		p.log.Warn("upstream handshake failed on the connection; retrying on a fresh one",
			"session", s.key, "attempt", attempt, "err", *connErr)
		// A fresh transport: nothing from before can be reused, whatever
		// the shared one still holds (an HTTP/2 connection with streams on
		// it is never idle, so closing idle connections would not drop it).
		base = p.http.Clone()
		select {
		case <-ctx.Done():
			return fmt.Errorf("initialize: %w after %s", ErrTimeout, p.cfg.Timeouts.Connect.D())
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
}

// connect runs the MCP handshake over transport.
func (p *Provider) connect(ctx context.Context, transport mcp.Transport) (*mcp.ClientSession, error) {
	cs, err := p.client.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: p.cfg.ProtocolVersion})
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil, fmt.Errorf("initialize: %w after %s", ErrTimeout, p.cfg.Timeouts.Connect.D())
		}
		return nil, fmt.Errorf("initialize: %w", err)
	}
	return cs, nil
}

// opened records the session dialed for s and watches it: once the SDK
// has given the connection up (the upstream forgot the session, a stream
// could not be resumed, the process exited), s is dead and the pool drops
// it before it fails a call.
func (p *Provider) opened(s *session, cs *mcp.ClientSession) {
	s.cs = cs
	gone := make(chan struct{})
	s.gone = gone
	go func() {
		err := cs.Wait()
		close(gone)
		p.log.Debug("upstream session ended", "session", s.key, "upstream_session", cs.ID(), "err", err)
	}()
	p.log.Debug("upstream session opened", "session", s.key, "upstream_session", cs.ID())
}

// connLost is told of every failure below HTTP on the way to the upstream.
// The idle keep-alive connections of the shared transport are dropped:
// when one connection failed, those that sat idle beside it (across the
// same partition or upstream restart) are suspect too, and a tool call,
// unlike a handshake, is not repeated when its connection fails under it.
func (p *Provider) connLost(err error) {
	p.log.Debug("connection to the upstream failed; dropping idle connections", "err", err)
	p.http.CloseIdleConnections()
}

// closeSession ends the MCP session (DELETE, for HTTP) and reaps the
// process (stdio).
func (p *Provider) closeSession(s *session) {
	grace := p.cfg.Timeouts.Shutdown.D()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.cs != nil {
			_ = s.cs.Close()
		}
		if s.http != nil {
			s.http.CloseIdleConnections()
		}
	}()
	if s.proc != nil {
		s.proc.stop(grace)
	}
	// The SDK's Close waits for its reader; with the process gone (or the
	// HTTP DELETE bounded at 5s by the SDK) it ends. Do not hang shutdown
	// on it regardless.
	select {
	case <-done:
	case <-time.After(2*grace + 5*time.Second):
		p.log.Warn("closing upstream session is taking long; moving on", "session", s.key)
	}
	p.log.Debug("upstream session closed", "session", s.key)
}

// CloseSession closes the upstream session bound to a downstream session,
// if any; the platform calls it when that session ends, so its process
// does not linger until the idle timeout.
func (p *Provider) CloseSession(sessionID string) {
	if sessionID != "" && !p.cfg.Stateless {
		p.pool.closeSession(sessionID)
	}
}

// Close stops every upstream session, in use or not, and returns when all
// processes are reaped. Calls in flight fail. It is idempotent.
func (p *Provider) Close() error {
	p.closeOnce.Do(func() {
		p.pool.shutdown()
		if p.http != nil {
			p.http.CloseIdleConnections()
		}
	})
	return nil
}

type discard struct{}

func (discard) Progress(context.Context, float64, float64, string) error { return nil }
func (discard) Log(context.Context, string, string, any) error           { return nil }
