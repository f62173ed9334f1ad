package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpstream/mcpstream/tools"
)

// server-everything reports unknown tools and bad arguments as isError
// results, so the JSON-RPC error mapping is exercised against the official
// go-sdk server, which answers them (and errors of raw handlers) with
// JSON-RPC errors.
func startGoSDKServer(t testing.TB) (*mcp.Server, string) {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "gosdk-upstream", Version: "1"}, nil)
	type addIn struct {
		A int `json:"a"`
		B int `json:"b"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "add"}, func(_ context.Context, _ *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: itoa(in.A + in.B)}}}, nil, nil
	})
	type sleepIn struct {
		MS int `json:"ms"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "sleep"}, func(ctx context.Context, _ *mcp.CallToolRequest, in sleepIn) (*mcp.CallToolResult, any, error) {
		select {
		case <-time.After(time.Duration(in.MS) * time.Millisecond):
		case <-ctx.Done():
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "slept"}}}, nil, nil
	})
	raw := func(name string, h mcp.ToolHandler) {
		srv.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)}, h)
	}
	raw("bad-params", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "field x must be positive"}
	})
	raw("internal", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "database down"}
	})
	raw("custom-code", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return nil, &jsonrpc.Error{Code: -32001, Message: "session not found", Data: json.RawMessage(`{"why":"restarted"}`)}
	})
	raw("tool-error", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "quota exceeded"}}}, nil
	})
	raw("structured", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: `{"n":1}`}},
			StructuredContent: map[string]any{"n": 1}, Meta: mcp.Meta{"k": "v"}}, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go func() { _ = hs.Serve(l) }()
	t.Cleanup(func() { _ = hs.Close() })
	return srv, "http://" + l.Addr().String() + "/mcp"
}

func TestErrorMapping(t *testing.T) {
	_, url := startGoSDKServer(t)
	p := newProvider(t, Config{Name: "gosdk", HTTP: &HTTPConfig{URL: url}, Breaker: BreakerConfig{Failures: 1}}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	do := func(name, args string) (*tools.Result, error) {
		var raw json.RawMessage
		if args != "" {
			raw = json.RawMessage(args)
		}
		return p.CallTool(ctx, tools.Call{Name: name, Arguments: raw}, nil)
	}

	if res, err := do("add", `{"a":2,"b":40}`); err != nil || text(t, res) != "42" {
		t.Fatalf("add: %v %v", res, err)
	}
	if _, err := do("no-such-tool", ""); !errors.Is(err, tools.ErrUnknownTool) {
		t.Errorf("unknown tool: want ErrUnknownTool, got %v", err)
	}
	var argErr *tools.ArgumentError
	if _, err := do("bad-params", ""); !errors.As(err, &argErr) || !strings.Contains(argErr.Msg, "must be positive") {
		t.Errorf("-32602: want *ArgumentError with the upstream's message, got %v", err)
	}
	// The go-sdk validates arguments against the schema itself.
	// The go-sdk validates arguments against the schema itself and answers
	// with a tool error: it stays one.
	if res, err := do("add", `{"a":"two"}`); err != nil || !res.IsError || !strings.Contains(text(t, res), "validating") {
		t.Errorf("schema violation: want an isError result, got %v %v", res, err)
	}
	var rpcErr *tools.RPCError
	if _, err := do("internal", ""); !errors.As(err, &rpcErr) || rpcErr.Code != -32603 || !strings.Contains(rpcErr.Message, "database down") {
		t.Errorf("-32603: want *RPCError -32603 passed through, got %v", err)
	}
	_, err := do("custom-code", "")
	if !errors.As(err, &rpcErr) || rpcErr.Code != -32603 || !strings.Contains(string(rpcErr.Data), `"code":-32001`) ||
		!strings.Contains(string(rpcErr.Data), `"why":"restarted"`) {
		t.Errorf("-32001 must not reach the client as mcpstream's own -32001: got %v data %s", err, rpcErr.Data)
	}
	res, err := do("tool-error", "")
	if err != nil || !res.IsError || text(t, res) != "quota exceeded" {
		t.Errorf("tool error: want an isError result, got %v %v", res, err)
	}
	res, err = do("structured", "")
	if err != nil || string(res.StructuredContent) != `{"n":1}` || string(res.Meta) != `{"k":"v"}` {
		t.Errorf("structured content/_meta not passed through: %+v %v", res, err)
	}
	// JSON-RPC errors prove the upstream alive: a breaker that opens after
	// one failure is still closed.
	if st := p.Stats(); st.Breaker != BreakerClosed {
		t.Errorf("breaker after JSON-RPC errors: %v, want closed", st.Breaker)
	}
}

// notifications/tools/list_changed makes the provider re-list and tell the
// platform, which refreshes its registry.
func TestToolListChanged(t *testing.T) {
	srv, url := startGoSDKServer(t)
	var reg atomic.Pointer[tools.Registry]
	changed := make(chan struct{}, 10)
	p := newProvider(t, Config{Name: "gosdk", HTTP: &HTTPConfig{URL: url}}, Options{OnToolsChanged: func() {
		if err := reg.Load().Refresh(context.Background()); err != nil {
			t.Errorf("registry refresh: %v", err)
		}
		changed <- struct{}{}
	}})
	r, err := tools.NewRegistry(p)
	if err != nil {
		t.Fatal(err)
	}
	reg.Store(r)
	if _, _, ok := r.Lookup("gosdk.late"); ok {
		t.Fatal("tool listed before it exists")
	}
	srv.AddTool(&mcp.Tool{Name: "late", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "here"}}}, nil
		})
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("OnToolsChanged not called after the upstream's list_changed")
	}
	if got := text(t, call(t, r, "", "gosdk.late", "")); got != "here" {
		t.Errorf("new tool: %q", got)
	}
}

// The catalog interfaces are consulted inside the sessions processor's
// partition loop and must answer from memory (see tools/catalog.go). An
// upstream's resources and prompts need a network round trip, so the
// Provider must not implement them, or the platform would put it in the
// catalog and block partitions on upstream I/O.
func TestProviderIsNotACatalogProvider(t *testing.T) {
	var p any = (*Provider)(nil)
	if _, ok := p.(tools.ResourceProvider); ok {
		t.Error("Provider implements tools.ResourceProvider")
	}
	if _, ok := p.(tools.PromptProvider); ok {
		t.Error("Provider implements tools.PromptProvider")
	}
	if _, ok := p.(tools.Completer); ok {
		t.Error("Provider implements tools.Completer")
	}
}
