package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

// allInOne starts every role in one platform process on broker b.
func allInOne(t *testing.T, b *streams.Broker, id string, c *counter) *role {
	cfg := roleConfig(b, id, c)
	cfg.Processor, cfg.Executor, cfg.Gateway = true, true, true
	return startRole(t, cfg)
}

// rawPost sends one JSON-RPC message as a 2025-11-25 client would.
func rawPost(t *testing.T, endpoint, session, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func initSession(t *testing.T, endpoint string) string {
	t.Helper()
	resp, body := rawPost(t, endpoint, "", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatal("initialize returned no Mcp-Session-Id")
	}
	if resp, body := rawPost(t, endpoint, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != 202 {
		t.Fatalf("initialized: %d %s", resp.StatusCode, body)
	}
	return sid
}

// TestSessionLifecycle drives a 2025-11-25 session with the official go-sdk
// client: initialize, list, call, ping, then DELETE, after which the
// session is gone for everyone.
func TestSessionLifecycle(t *testing.T) {
	b := startBroker(t, "")
	r := allInOne(t, b, "p1", newCounter())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var sid string
	httpClient := &http.Client{Transport: sessionSniffer(&sid)}
	cs := connect(t, ctx, httpClient, r.ready.MCPURL, "2025-11-25")
	if got := cs.InitializeResult().ProtocolVersion; got != "2025-11-25" {
		t.Fatalf("negotiated %q", got)
	}
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tl := range lt.Tools {
		names[tl.Name] = true
	}
	for _, want := range []string{"test_simple_text", "test_tool_with_progress", "count"} {
		if !names[want] {
			t.Errorf("tools/list lacks %s (got %v)", want, names)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_simple_text"})
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, res); got != "This is a simple text response for testing." {
		t.Fatalf("test_simple_text = %q", got)
	}
	var progress []float64
	var mu sync.Mutex
	c2 := mcp.NewClient(&mcp.Implementation{Name: "progress", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, req.Params.Progress)
			mu.Unlock()
		}})
	cs2, err := c2.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: r.ready.MCPURL, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	params := &mcp.CallToolParams{Name: "test_tool_with_progress"}
	params.SetProgressToken("tok-1")
	if _, err := cs2.CallTool(ctx, params); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(progress) != 3 || progress[0] > progress[1] || progress[1] > progress[2] {
		t.Errorf("progress notifications = %v, want 3 non-decreasing before the result", progress)
	}
	mu.Unlock()
	cs2.Close()

	if err := cs.Ping(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if sid == "" {
		t.Fatal("no session id seen")
	}
	if err := cs.Close(); err != nil {
		t.Fatalf("closing (DELETE): %v", err)
	}
	resp, body := rawPost(t, r.ready.MCPURL, sid, `{"jsonrpc":"2.0","id":99,"method":"ping"}`)
	if resp.StatusCode != 404 || !strings.Contains(string(body), "-32001") {
		t.Fatalf("ping after DELETE: %d %s, want 404 with -32001", resp.StatusCode, body)
	}
}

// sessionSniffer records the session id the server issues.
func sessionSniffer(sid *string) http.RoundTripper {
	var mu sync.Mutex
	return rtFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil {
			if s := resp.Header.Get("Mcp-Session-Id"); s != "" {
				mu.Lock()
				*sid = s
				mu.Unlock()
			}
		}
		return resp, err
	})
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestStatelessClient lets the go-sdk client choose: it tries 2026-07-28's
// server/discover first, and then calls tools statelessly.
func TestStatelessClient(t *testing.T) {
	b := startBroker(t, "")
	r := allInOne(t, b, "p1", newCounter())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := connect(t, ctx, nil, r.ready.MCPURL, "")
	if got := cs.InitializeResult().ProtocolVersion; got != "2026-07-28" {
		t.Fatalf("negotiated %q, want 2026-07-28", got)
	}
	for i := 0; i < 5; i++ {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_simple_text"})
		if err != nil {
			t.Fatal(err)
		}
		if got := textOf(t, res); !strings.Contains(got, "simple text") {
			t.Fatalf("call %d: %q", i, got)
		}
	}
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// TestTwoGatewaysRoundRobin: every HTTP request of one session goes to the
// other gateway than the previous one; nothing is sticky.
func TestTwoGatewaysRoundRobin(t *testing.T) {
	b := startBroker(t, "")
	c := newCounter()
	pcfg := roleConfig(b, "proc-1", c)
	pcfg.Processor, pcfg.Executor = true, true
	startRole(t, pcfg)
	g1cfg, g2cfg := roleConfig(b, "gw-a"), roleConfig(b, "gw-b")
	g1cfg.Gateway, g2cfg.Gateway = true, true
	g1, g2 := startRole(t, g1cfg), startRole(t, g2cfg)

	rr := newRoundRobin(g1.ready.MCPURL, g2.ready.MCPURL)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, version := range []string{"2025-11-25", ""} {
		cs := connect(t, ctx, &http.Client{Transport: rr}, g1.ready.MCPURL, version)
		for i := 0; i < 20; i++ {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "count", Arguments: map[string]any{"tag": fmt.Sprint(i)}})
			if err != nil {
				t.Fatalf("version %q call %d: %v", version, i, err)
			}
			if !strings.HasPrefix(textOf(t, res), "run 1 of ") {
				t.Fatalf("call %d ran more than once: %q", i, textOf(t, res))
			}
		}
		cs.Close()
	}
	if a, b := rr.sent[0].Load(), rr.sent[1].Load(); a < 20 || b < 20 {
		t.Fatalf("requests per gateway = %d, %d; want both >= 20", a, b)
	}
	if got := c.total.Load(); got != 40 {
		t.Fatalf("count ran %d times, want 40", got)
	}
}

// TestProcessorFailover stops one of two processors while sessions keep
// calling; its partitions move to the other and every call is answered.
func TestProcessorFailover(t *testing.T) {
	b := startBroker(t, "")
	c := newCounter()
	p1cfg, p2cfg := roleConfig(b, "proc-1", c), roleConfig(b, "proc-2", c)
	p1cfg.Processor, p1cfg.Executor = true, true
	p2cfg.Processor, p2cfg.Executor = true, true
	p1 := startRole(t, p1cfg)
	startRole(t, p2cfg)
	gcfg := roleConfig(b, "gw")
	gcfg.Gateway = true
	gw := startRole(t, gcfg)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const sessions, calls = 6, 30
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	stopAt := make(chan struct{})
	var once sync.Once
	for s := 0; s < sessions; s++ {
		cs := connect(t, ctx, nil, gw.ready.MCPURL, "2025-11-25")
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cs.Close()
			for i := 0; i < calls; i++ {
				if i == calls/3 {
					once.Do(func() { close(stopAt) })
				}
				cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
				_, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "count", Arguments: map[string]any{"i": i}})
				ccancel()
				if err != nil {
					errs <- fmt.Errorf("session call %d: %w", i, err)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	<-stopAt
	p1.stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every call ran exactly once, counted on the tool's side, although
	// the processor owning half the toolcalls partitions and one of the two
	// executors left mid-run: the new owner replays up to a second of
	// calls and dispatches RUNNING ones again, and the claim in the table
	// keeps a second executor from running them.
	if got := c.total.Load(); got != sessions*calls {
		t.Errorf("tool ran %d times for %d calls", got, sessions*calls)
	}
	if id, n := c.maxPerCall(); n > 1 {
		t.Errorf("call %s ran %d times", id, n)
	}
}

// TestRestartRecoversSessions stops the whole platform, broker included,
// and starts it again on the same data dir: the session still works,
// because its state is rebuilt from the topics.
func TestRestartRecoversSessions(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir)
	r := allInOne(t, b, "p1", newCounter())
	sid := initSession(t, r.ready.MCPURL)
	if resp, body := rawPost(t, r.ready.MCPURL, sid, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); resp.StatusCode != 200 {
		t.Fatalf("ping before restart: %d %s", resp.StatusCode, body)
	}
	r.stop()
	b.Close()

	b2 := startBroker(t, dir)
	r2 := allInOne(t, b2, "p2", newCounter())
	resp, body := rawPost(t, r2.ready.MCPURL, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "simple text response") {
		t.Fatalf("call after restart: %d %s", resp.StatusCode, body)
	}
	// And a session that never existed is still refused.
	if resp, _ := rawPost(t, r2.ready.MCPURL, "0123456789abcdef", `{"jsonrpc":"2.0","id":3,"method":"ping"}`); resp.StatusCode != 404 {
		t.Fatalf("unknown session after restart: %d, want 404", resp.StatusCode)
	}
}

// TestDuplicateRequestEvent: the same request event produced twice (a
// gateway retrying its produce, or a client producing straight into Kafka)
// and the same JSON-RPC id posted twice both run the tool once.
func TestDuplicateRequestEvent(t *testing.T) {
	b := startBroker(t, "")
	c := newCounter()
	r := allInOne(t, b, "p1", c)
	sid := initSession(t, r.ready.MCPURL)

	// Retry over HTTP with the same id.
	body := `{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"count","arguments":{}}}`
	var first []byte
	for i := 0; i < 3; i++ {
		resp, got := rawPost(t, r.ready.MCPURL, sid, body)
		if resp.StatusCode != 200 {
			t.Fatalf("attempt %d: %d %s", i, resp.StatusCode, got)
		}
		if i == 0 {
			first = got
		} else if !bytes.Equal(got, first) {
			t.Fatalf("retry %d answered %s, first answer %s", i, got, first)
		}
	}
	eid := streams.SessionEventID(sid, []byte(`"call-1"`))
	if n := c.executions(eid); n != 1 {
		t.Fatalf("HTTP retries: tool ran %d times, want 1", n)
	}

	// The same event produced twice straight into Kafka.
	reg := schemas.MustLoad()
	ev := &schemas.RequestEvent{EventID: streams.SessionEventID(sid, []byte(`7`)), Kind: schemas.KindRequest, SessionID: sid,
		Principal: "anonymous", Method: "tools/call", RPCID: []byte(`7`),
		Params: []byte(`{"name":"count","arguments":{"direct":true}}`), ReceivedAt: time.Now()}
	val, err := reg.EncodeRequest(ev)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := streams.NewClient(streams.Config{Brokers: b.Addrs()}.WithDefaults(), "test-producer", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := streams.Topics{}.Requests()
	for i := 0; i < 2; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(sid), Value: val}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for c.executions(ev.EventID) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// Give a second execution every chance to happen before counting.
	resp, got := rawPost(t, r.ready.MCPURL, sid, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"count","arguments":{"direct":true}}}`)
	if resp.StatusCode != 200 || !strings.Contains(string(got), "run 1 of "+ev.EventID) {
		t.Fatalf("HTTP call with the produced id: %d %s", resp.StatusCode, got)
	}
	if n := c.executions(ev.EventID); n != 1 {
		t.Fatalf("event produced twice: tool ran %d times, want 1", n)
	}
}

// TestBadInput checks the errors a client gets for malformed traffic
// through the real stack.
func TestBadInput(t *testing.T) {
	b := startBroker(t, "")
	r := allInOne(t, b, "p1", newCounter())
	sid := initSession(t, r.ready.MCPURL)
	for _, tc := range []struct {
		name, session, body string
		status, code        int
	}{
		{"parse error", sid, `{"jsonrpc":`, 400, -32700},
		{"invalid request", sid, `{"jsonrpc":"1.0","id":1,"method":"ping"}`, 400, -32600},
		{"unknown method", sid, `{"jsonrpc":"2.0","id":1,"method":"no/such"}`, 200, -32601},
		{"unknown tool", sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"nope"}}`, 200, -32602},
		{"arguments not object", sid, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"count","arguments":[1]}}`, 200, -32602},
		{"unknown session", "feedfacefeedface", `{"jsonrpc":"2.0","id":4,"method":"ping"}`, 404, -32001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawPost(t, r.ready.MCPURL, tc.session, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			var m struct {
				Error *struct{ Code int } `json:"error"`
			}
			if err := json.Unmarshal(body, &m); err != nil || m.Error == nil || m.Error.Code != tc.code {
				t.Fatalf("body %s, want error code %d", body, tc.code)
			}
		})
	}
	// The session still works after all that.
	if resp, body := rawPost(t, r.ready.MCPURL, sid, `{"jsonrpc":"2.0","id":9,"method":"ping"}`); resp.StatusCode != 200 {
		t.Fatalf("ping: %d %s", resp.StatusCode, body)
	}
}

// TestRequestReplyLatency guards the request/reply path against batching
// delays (goka's default 100 ms producer flush, franz-go's linger): a ping
// crosses Kafka twice and one goka emit, so its median must stay far below
// one flush interval.
func TestRequestReplyLatency(t *testing.T) {
	b := startBroker(t, "")
	r := allInOne(t, b, "p1", newCounter())
	sid := initSession(t, r.ready.MCPURL)
	const n = 60
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		resp, body := rawPost(t, r.ready.MCPURL, sid, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, i+1))
		if resp.StatusCode != 200 {
			t.Fatalf("ping %d: %d %s", i, resp.StatusCode, body)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	median := lat[n/2]
	t.Logf("ping through Kafka: p50 %s, max %s", median, lat[n-1])
	if median > 40*time.Millisecond {
		t.Fatalf("median ping %s: a producer is batching (flush/linger) on the reply path", median)
	}
}

// TestLargeRequests: big but allowed requests go through, oversized ones
// are refused with a clear error, and none of them stops a processor (a
// record the log refuses would stop it on every replay).
func TestLargeRequests(t *testing.T) {
	b := startBroker(t, "")
	r := allInOne(t, b, "p1", newCounter())
	initBody := func(padBytes int) string {
		return `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"experimental":{"pad":"` +
			strings.Repeat("c", padBytes) + `"}},"clientInfo":{"name":"big","version":"1"}}}`
	}
	if resp, body := rawPost(t, r.ready.MCPURL, "", initBody(300<<10)); resp.StatusCode != 400 || !strings.Contains(string(body), "-32602") {
		t.Fatalf("initialize with 300 KiB of capabilities: %d %.200s, want 400 -32602", resp.StatusCode, body)
	}
	resp, body := rawPost(t, r.ready.MCPURL, "", initBody(200<<10))
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize with 200 KiB of capabilities: %d %.200s", resp.StatusCode, body)
	}
	// 3 MiB of arguments plus the session's 200 KiB of capabilities in the
	// job: above Kafka's default 1 MB record, within the platform's limit.
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"count","arguments":{"a":"` + strings.Repeat("a", 3<<20) + `"}}}`
	if resp, body := rawPost(t, r.ready.MCPURL, sid, big); resp.StatusCode != 200 || !strings.Contains(string(body), "run 1 of") {
		t.Fatalf("3 MiB tool call: %d %.300s", resp.StatusCode, body)
	}
	huge := `{"jsonrpc":"2.0","id":2,"method":"ping","params":{"a":"` + strings.Repeat("a", 5<<20) + `"}}`
	if resp, _ := rawPost(t, r.ready.MCPURL, sid, huge); resp.StatusCode != 413 {
		t.Fatalf("5 MiB body: %d, want 413", resp.StatusCode)
	}
	if resp, body := rawPost(t, r.ready.MCPURL, sid, `{"jsonrpc":"2.0","id":3,"method":"ping"}`); resp.StatusCode != 200 {
		t.Fatalf("ping afterwards: %d %s", resp.StatusCode, body)
	}
}

// TestBrokerUnreachable: with the broker gone, a request fails within the
// delivery timeout with 503 instead of hanging, and the gateway reports
// itself not ready.
func TestBrokerUnreachable(t *testing.T) {
	b := startBroker(t, "")
	gcfg := roleConfig(b, "gw")
	gcfg.Gateway = true
	gw := startRole(t, gcfg)
	b.Close()
	start := time.Now()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_simple_text","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	req, _ := http.NewRequest(http.MethodPost, gw.ready.MCPURL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", "test_simple_text")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("request with the broker down: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d after %s, want 503", resp.StatusCode, time.Since(start))
	}
	t.Logf("503 after %s", time.Since(start).Round(time.Millisecond))
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _ := httpGet(t, strings.TrimSuffix(gw.ready.MCPURL, "/mcp")+"/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d 15s after the broker went away", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
