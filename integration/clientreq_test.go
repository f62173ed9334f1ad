package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpstream/mcpstream/gateway"
)

// TestClientRequestsThroughAnyGateway: tools that ask the client something
// mid-call (sampling, elicitation, roots), through two gateways taken in
// turn, in both revisions. In 2025-11-25 the request travels on the call's
// stream at one gateway and the client's response is POSTed to the other;
// in 2026-07-28 the call ends with an input_required result and the go-sdk
// client retries with the answers (also with an idempotency key, which must
// not make a retry look like the first round).
func TestClientRequestsThroughAnyGateway(t *testing.T) {
	b := startBroker(t, "")
	pcfg := roleConfig(b, "proc-1")
	pcfg.Processor, pcfg.Executor = true, true
	startRole(t, pcfg)
	g1cfg, g2cfg := roleConfig(b, "gw-a"), roleConfig(b, "gw-b")
	g1cfg.Gateway, g2cfg.Gateway = true, true
	g1, g2 := startRole(t, g1cfg), startRole(t, g2cfg)
	rr := newRoundRobin(g1.ready.MCPURL, g2.ready.MCPURL)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var sampled, elicited atomic.Int64
	newClient := func() *mcp.Client {
		c := mcp.NewClient(&mcp.Implementation{Name: "mcpstream-test", Version: "1"}, &mcp.ClientOptions{
			CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
				sampled.Add(1)
				return &mcp.CreateMessageResult{Role: "assistant", Model: "test-model",
					Content: &mcp.TextContent{Text: "Paris, said the model"}}, nil
			},
			ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
				elicited.Add(1)
				content := map[string]any{"name": "Alice", "color": "blue", "username": "alice", "email": "a@example.com"}
				return &mcp.ElicitResult{Action: "accept", Content: content}, nil
			},
		})
		c.AddRoots(&mcp.Root{URI: "file:///work", Name: "work"})
		return c
	}
	calls := []struct {
		tool string
		args map[string]any
		want string
	}{
		{"test_sampling", map[string]any{"prompt": "Capital of France?"}, "LLM response: Paris, said the model"},
		{"test_elicitation", map[string]any{"message": "Who are you?"}, `"username":"alice"`},
		{"test_input_required_result_multi_round", nil, "Multi-round complete: Alice likes blue"},
		{"test_input_required_result_multiple_inputs", nil, "Paris, said the model Alice — 1 root(s) visible"},
	}
	for _, version := range []string{"2025-11-25", ""} {
		sampled.Store(0)
		elicited.Store(0)
		tr := &mcp.StreamableClientTransport{Endpoint: g1.ready.MCPURL, HTTPClient: &http.Client{Transport: rr}, MaxRetries: -1}
		cs, err := newClient().Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: version})
		if err != nil {
			t.Fatalf("connecting (version %q): %v", version, err)
		}
		for i, c := range calls {
			params := &mcp.CallToolParams{Name: c.tool, Arguments: c.args}
			if version == "" && i%2 == 0 {
				// Every round of a keyed call carries the same key.
				params.Meta = mcp.Meta{"io.mcpstream/idempotencyKey": "client-requests-" + c.tool}
			}
			res, err := cs.CallTool(ctx, params)
			if err != nil {
				t.Fatalf("version %q: %s: %v", version, c.tool, err)
			}
			if res.IsError || !strings.Contains(textOf(t, res), c.want) {
				t.Fatalf("version %q: %s = %q (isError %v), want it to contain %q", version, c.tool, textOf(t, res), res.IsError, c.want)
			}
		}
		// Sampling: test_sampling once, multiple_inputs once; elicitation:
		// test_elicitation, two rounds of multi_round, multiple_inputs.
		if s, e := sampled.Load(), elicited.Load(); s != 2 || e != 4 {
			t.Errorf("version %q: client asked %d sampling and %d elicitation requests, want 2 and 4", version, s, e)
		}
		cs.Close()
	}
	if a, b := rr.sent[0].Load(), rr.sent[1].Load(); a < 8 || b < 8 {
		t.Fatalf("requests per gateway = %d, %d; want both >= 8", a, b)
	}
}

// TestClientResponseValidation: a response to a tool's request is taken
// only from the session (and principal) the request went to; other
// sessions, unknown, repeated, stale and ownerless ids get an error the
// client can read, and nothing else is disturbed.
func TestClientResponseValidation(t *testing.T) {
	b := startBroker(t, "")
	all := allInOne(t, b, "all-1", newCounter())
	gcfg := roleConfig(b, "gw-2")
	gcfg.Gateway = true
	other := startRole(t, gcfg)
	gw1, gw2 := all.ready.MCPURL, other.ready.MCPURL

	session := func() string {
		resp, body := rawPost(t, gw1, "", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"raw","version":"1"}}}`)
		sid := resp.Header.Get("Mcp-Session-Id")
		if resp.StatusCode != 200 || sid == "" {
			t.Fatalf("initialize: %d %s", resp.StatusCode, body)
		}
		if resp, body := rawPost(t, gw1, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != 202 {
			t.Fatalf("initialized: %d %s", resp.StatusCode, body)
		}
		return sid
	}
	a, bob := session(), session()

	// The call's stream, read line by line: the request arrives first.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw1, strings.NewReader(
		`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"Who?"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", a)
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("tools/call answered %s, want an event stream", ct)
	}
	frames := make(chan string, 8)
	go func() {
		defer close(frames)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				frames <- data
			}
		}
	}()
	next := func() map[string]any {
		t.Helper()
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("stream ended early")
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(f), &m); err != nil {
				t.Fatalf("frame %q: %v", f, err)
			}
			return m
		case <-ctx.Done():
			t.Fatal("no frame")
		}
		return nil
	}
	ask := next()
	id, _ := ask["id"].(string)
	if ask["method"] != "elicitation/create" || !strings.HasPrefix(id, "mcpstream/all-1/") {
		t.Fatalf("first frame %v, want an elicitation request with an id naming the executor", ask)
	}
	answer := func(gw, sid, id string) (int, string) {
		t.Helper()
		resp, body := rawPost(t, gw, sid, fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"result":{"action":"accept","content":{"username":"alice","email":"a@example.com"}}}`, id))
		return resp.StatusCode, string(body)
	}
	cut := strings.LastIndexByte(id, '/')
	for name, c := range map[string]struct {
		sid, id, want string
		status        int
	}{
		"another session": {bob, id, "unknown or expired request id", 400},
		"unknown seq":     {a, id[:cut] + "/999999", "unknown or expired request id", 400},
		"past life":       {a, "mcpstream/all-1/000000000000" + id[cut:], "has restarted", 400},
		"malformed":       {a, "mcpstream/all-1", "unknown request id", 400},
		"no session":      {"", id, "needs the Mcp-Session-Id", 400},
	} {
		if status, body := answer(gw2, c.sid, c.id); status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d and %q", name, status, body, c.status, c.want)
		}
	}
	// Nobody reads the partition of an executor that does not exist: the
	// gateway gives up after its bound and says so.
	start := time.Now()
	if status, body := answer(gw2, a, "mcpstream/ghost/abcdef123456/1"); status != http.StatusGatewayTimeout || !strings.Contains(body, "did not take the response") {
		t.Errorf("dead executor: %d %s", status, body)
	}
	if d := time.Since(start); d > 2*gateway.ClientResponseAckTimeout {
		t.Errorf("dead executor answered after %s", d)
	}
	// The right session, through the other gateway: taken, and the call
	// finishes on its stream.
	if status, body := answer(gw2, a, id); status != http.StatusAccepted {
		t.Fatalf("right session: %d %s", status, body)
	}
	res := next()
	if res["id"] != float64(5) || !strings.Contains(fmt.Sprint(res["result"]), `User response: action=accept`) {
		t.Fatalf("result frame %v", res)
	}
	if status, body := answer(gw2, a, id); status != 400 || !strings.Contains(body, "unknown or expired") {
		t.Errorf("answered twice: %d %s", status, body)
	}
	// The session still works.
	if resp, body := rawPost(t, gw2, a, `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"test_simple_text"}}`); resp.StatusCode != 200 || !strings.Contains(string(body), "simple text") {
		t.Fatalf("after: %d %s", resp.StatusCode, body)
	}
}
