package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpstream/mcpstream/ops/platform"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools"
	"github.com/mcpstream/mcpstream/tools/conformance"
)

// counter is a tool provider that counts executions per request event id,
// from the tool's own side: the ground truth for "ran exactly once".
type counter struct {
	mu     sync.Mutex
	byCall map[string]int
	total  atomic.Int64
	delay  atomic.Int64 // nanoseconds each body waits
	// started counts bodies entered, cancelled those whose context ended
	// while they waited out delay.
	started   atomic.Int64
	cancelled atomic.Int64
}

func newCounter() *counter { return &counter{byCall: map[string]int{}} }

func (c *counter) Name() string { return "counter" }

func (c *counter) ListTools(context.Context) ([]tools.Tool, error) {
	return []tools.Tool{{Name: "count", Description: "counts its executions",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"tag":{"type":"string"}}}`)}}, nil
}

func (c *counter) CallTool(ctx context.Context, call tools.Call, _ tools.Notifier) (*tools.Result, error) {
	if call.Name != "count" {
		return nil, tools.ErrUnknownTool
	}
	c.started.Add(1)
	if d := time.Duration(c.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			c.cancelled.Add(1)
			return nil, ctx.Err()
		}
	}
	c.mu.Lock()
	c.byCall[call.EventID]++
	n := c.byCall[call.EventID]
	c.mu.Unlock()
	c.total.Add(1)
	text, _ := json.Marshal(map[string]any{"type": "text", "text": fmt.Sprintf("run %d of %s", n, call.EventID)})
	return &tools.Result{Content: []json.RawMessage{text}}, nil
}

func (c *counter) executions(eventID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byCall[eventID]
}

// maxPerCall is the largest number of executions of any one call.
func (c *counter) maxPerCall() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var id string
	m := 0
	for k, v := range c.byCall {
		if v > m {
			id, m = k, v
		}
	}
	return id, m
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("MCPSTREAM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// startBroker starts an embedded broker for one test.
func startBroker(t *testing.T, dataDir string) *streams.Broker {
	t.Helper()
	b, err := streams.NewBroker(streams.BrokerConfig{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// role is one platform process (in this test binary).
type role struct {
	ready platform.Ready
	stop  func()
}

// startRole runs platform.Run with cfg until stop or the end of the test.
func startRole(t *testing.T, cfg platform.Config) *role {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	readyCh := make(chan platform.Ready, 1)
	done := make(chan error, 1)
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.Gateway && cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	cfg.OnReady = func(r platform.Ready) { readyCh <- r }
	go func() { done <- platform.Run(ctx, cfg) }()
	var once sync.Once
	r := &role{stop: func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("role %s stopped with error: %v", cfg.InstanceID, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("role %s did not stop within 30s", cfg.InstanceID)
			}
		})
	}}
	t.Cleanup(r.stop)
	select {
	case r.ready = <-readyCh:
	case err := <-done:
		t.Fatalf("role %s failed to start: %v", cfg.InstanceID, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("role %s not ready after 60s", cfg.InstanceID)
	}
	return r
}

// roleConfig is a role on broker b with the conformance tools and the
// given extra providers.
func roleConfig(b *streams.Broker, id string, extra ...tools.Provider) platform.Config {
	providers := append([]tools.Provider{conformance.New()}, extra...)
	return platform.Config{InstanceID: id, Streams: streams.Config{Brokers: b.Addrs()}, Providers: providers}
}

// connect opens a go-sdk client session on url with the given protocol
// version ("" lets the SDK choose: it tries 2026-07-28 first).
func connect(t *testing.T, ctx context.Context, httpClient *http.Client, endpoint, version string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "mcpstream-test", Version: "1"}, nil)
	tr := &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: httpClient, MaxRetries: -1}
	cs, err := c.Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connecting to %s (version %q): %v", endpoint, version, err)
	}
	return cs
}

func textOf(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if res == nil || len(res.Content) == 0 {
		t.Fatalf("empty tool result %+v", res)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("first content is %T, want text", res.Content[0])
	}
	return tc.Text
}

// roundRobin sends each HTTP request to the next of several gateways: no
// stickiness at all, the worst case for a stateful protocol.
type roundRobin struct {
	hosts []string
	n     atomic.Int64
	base  http.RoundTripper
	sent  []atomic.Int64
	// keepHost leaves the Host header as the client sent it (a proxy).
	keepHost bool
}

func newRoundRobin(endpoints ...string) *roundRobin {
	rr := &roundRobin{base: http.DefaultTransport, sent: make([]atomic.Int64, len(endpoints))}
	for _, e := range endpoints {
		u, err := url.Parse(e)
		if err != nil {
			panic(err)
		}
		rr.hosts = append(rr.hosts, u.Host)
	}
	return rr
}

func (rr *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	i := int(rr.n.Add(1)-1) % len(rr.hosts)
	rr.sent[i].Add(1)
	req = req.Clone(req.Context())
	req.URL.Host = rr.hosts[i]
	if !rr.keepHost {
		req.Host = rr.hosts[i]
	}
	return rr.base.RoundTrip(req)
}
