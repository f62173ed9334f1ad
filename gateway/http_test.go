package gateway_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/gateway"
	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

// recMetrics records Metrics.Request calls.
type recMetrics struct {
	mu    sync.Mutex
	calls []string // "method outcome"
}

func (m *recMetrics) Request(method, outcome string, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, method+" "+outcome)
}
func (m *recMetrics) Produce(time.Duration, error) {}
func (m *recMetrics) ReplyLag(int64)               {}

func (m *recMetrics) take() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.calls
	m.calls = nil
	return c
}

// newGateway builds a gateway that is never Run: no broker is reachable, so
// every request that passes validation ends in 503 (not ready).
func newGateway(t *testing.T, mod func(*gateway.Config)) (*gateway.Gateway, *recMetrics) {
	t.Helper()
	m := &recMetrics{}
	cfg := gateway.Config{Streams: streams.Config{Brokers: []string{"127.0.0.1:1"}}, ID: "gw-test", Metrics: m}
	if mod != nil {
		mod(&cfg)
	}
	g, err := gateway.New(schemas.MustLoad(), cfg)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	if g.Ready() {
		t.Fatal("a gateway that was never Run reports ready")
	}
	return g, m
}

// rpcResponse is a JSON-RPC response as the gateway writes it.
type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

func decodeRPC(t *testing.T, resp *http.Response) rpcResponse {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var r rpcResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	if r.JSONRPC != "2.0" {
		t.Errorf("jsonrpc = %q in %s", r.JSONRPC, b)
	}
	if r.Error == nil || r.Result != nil {
		t.Fatalf("body %s, want exactly an error", b)
	}
	if r.Error.Message == "" {
		t.Errorf("error without message: %s", b)
	}
	return r
}

func b64(s string) string { return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?=" }

const (
	v2026     = "2026-07-28"
	validSess = "0123456789abcdef0123456789abcdef"
)

// statelessBody is a 2026-07-28 request body with the given id, method,
// params and _meta (the required _meta fields unless meta overrides them;
// a nil value deletes a field).
func statelessBody(id int, method string, params map[string]any, meta map[string]any) string {
	m := map[string]any{
		"io.modelcontextprotocol/protocolVersion":    v2026,
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
	}
	for k, v := range meta {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	p := map[string]any{"_meta": m}
	for k, v := range params {
		p[k] = v
	}
	b, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": p})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// statelessCall is a valid 2026-07-28 tools/call body for tool name.
func statelessCall(name string) string {
	return statelessBody(3, "tools/call", map[string]any{"name": name, "arguments": map[string]any{}}, nil)
}

func statelessHeaders(method, name string) map[string]string {
	h := map[string]string{"Mcp-Protocol-Version": v2026, "Mcp-Method": method}
	if name != "" {
		h["Mcp-Name"] = name
	}
	return h
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestServeHTTP(t *testing.T) {
	const (
		initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`
		ping       = `{"jsonrpc":"2.0","id":"a-1","method":"ping"}`
	)
	sess := map[string]string{"Mcp-Session-Id": validSess, "Mcp-Protocol-Version": "2025-11-25"}
	discover := statelessBody(4, "server/discover", nil, nil)

	cases := []struct {
		name    string
		cfg     func(*gateway.Config)
		method  string // HTTP method; default POST
		host    string // default 127.0.0.1:8080
		headers map[string]string
		noCT    bool // omit the default Content-Type
		body    string
		// expectations
		status int
		code   int
		id     string // raw JSON id expected in the error; default null
		check  func(t *testing.T, resp *http.Response, r rpcResponse)
		metric string // "method outcome" reported to Metrics; "" skips
	}{
		// DNS-rebinding protection
		{name: "foreign Origin", headers: map[string]string{"Origin": "http://evil.example"}, body: initialize,
			status: 403, code: jsonrpc.CodeInvalidRequest, metric: "invalid rejected"},
		{name: "Origin null", headers: map[string]string{"Origin": "null"}, body: initialize,
			status: 403, code: jsonrpc.CodeInvalidRequest},
		{name: "Origin with localhost prefix", headers: map[string]string{"Origin": "http://localhost.evil.example"}, body: initialize,
			status: 403, code: jsonrpc.CodeInvalidRequest},
		{name: "foreign Host", host: "evil.example", body: initialize,
			status: 403, code: jsonrpc.CodeInvalidRequest},
		{name: "foreign Host with port", host: "evil.example:8080", body: initialize,
			status: 403, code: jsonrpc.CodeInvalidRequest},
		{name: "foreign Origin is checked before the HTTP method", method: http.MethodGet, headers: map[string]string{"Origin": "http://evil.example"},
			status: 403, code: jsonrpc.CodeInvalidRequest},
		{name: "localhost Origin", headers: map[string]string{"Origin": "http://localhost:3000"}, body: initialize,
			status: 503, code: jsonrpc.CodeInternalError, id: "1", metric: "initialize unavailable"},
		{name: "127.0.0.1 Origin and Host", host: "127.0.0.1:9999", headers: map[string]string{"Origin": "http://127.0.0.1:9999"}, body: initialize,
			status: 503, code: jsonrpc.CodeInternalError, id: "1"},
		{name: "IPv6 loopback Origin and Host", host: "[::1]:8080", headers: map[string]string{"Origin": "http://[::1]:3000"}, body: initialize,
			status: 503, code: jsonrpc.CodeInternalError, id: "1"},
		{name: "localhost Host without port", host: "localhost", body: initialize,
			status: 503, code: jsonrpc.CodeInternalError, id: "1"},
		{name: "configured Origin", cfg: func(c *gateway.Config) { c.AllowedOrigins = []string{"https://app.example"} },
			headers: map[string]string{"Origin": "https://app.example"}, body: initialize,
			status: 503, code: jsonrpc.CodeInternalError, id: "1"},
		{name: "configured Origin does not allow others", cfg: func(c *gateway.Config) { c.AllowedOrigins = []string{"https://app.example"} },
			headers: map[string]string{"Origin": "https://app.example.evil"}, body: initialize,
			status: 403, code: jsonrpc.CodeInvalidRequest},
		{name: "wildcard Origin", cfg: func(c *gateway.Config) { c.AllowedOrigins = []string{"*"} },
			headers: map[string]string{"Origin": "http://evil.example"}, body: initialize,
			status: 503, code: jsonrpc.CodeInternalError, id: "1"},
		{name: "configured Host", cfg: func(c *gateway.Config) { c.AllowedHosts = []string{"mcp.internal"} },
			host: "mcp.internal:443", body: initialize, status: 503, code: jsonrpc.CodeInternalError, id: "1"},
		{name: "public host skips the Host check", cfg: func(c *gateway.Config) { c.PublicHost = true },
			host: "evil.example", body: initialize, status: 503, code: jsonrpc.CodeInternalError, id: "1"},
		{name: "public host still checks Origin", cfg: func(c *gateway.Config) { c.PublicHost = true },
			host: "mcp.example", headers: map[string]string{"Origin": "http://evil.example"}, body: initialize,
			status: 403, code: jsonrpc.CodeInvalidRequest},

		// Notification streams (listen.go)
		{name: "subscriptions/listen without notifications", headers: statelessHeaders("subscriptions/listen", ""),
			body: statelessBody(8, "subscriptions/listen", nil, nil), status: 400, code: jsonrpc.CodeInvalidParams, id: "8"},
		{name: "subscriptions/listen, valid, not ready", headers: statelessHeaders("subscriptions/listen", ""),
			body:   statelessBody(8, "subscriptions/listen", map[string]any{"notifications": map[string]any{"toolsListChanged": true}}, nil),
			status: 503, code: jsonrpc.CodeInternalError, id: "8"},
		{name: "GET stream with a malformed session", method: http.MethodGet,
			headers: map[string]string{"Mcp-Session-Id": "bad id", "Accept": "text/event-stream"}, status: 400, code: jsonrpc.CodeInvalidRequest},
		{name: "GET stream not accepting SSE", method: http.MethodGet,
			headers: map[string]string{"Mcp-Session-Id": validSess, "Accept": "application/json"}, status: 406, code: jsonrpc.CodeInvalidRequest},
		{name: "GET stream, not ready", method: http.MethodGet,
			headers: map[string]string{"Mcp-Session-Id": validSess, "Accept": "text/event-stream"}, status: 503, code: jsonrpc.CodeInternalError},

		// HTTP framing
		{name: "GET", method: http.MethodGet, status: 405, code: jsonrpc.CodeInvalidRequest, metric: "invalid rejected",
			check: func(t *testing.T, resp *http.Response, _ rpcResponse) {
				allow := resp.Header.Get("Allow")
				if !strings.Contains(allow, "POST") || !strings.Contains(allow, "DELETE") {
					t.Errorf("Allow = %q, want POST and DELETE", allow)
				}
			}},
		{name: "PUT", method: http.MethodPut, body: ping, status: 405, code: jsonrpc.CodeInvalidRequest},
		{name: "wrong Content-Type", headers: map[string]string{"Content-Type": "text/plain"}, body: initialize,
			status: 415, code: jsonrpc.CodeInvalidRequest, metric: "invalid rejected"},
		{name: "malformed Content-Type", headers: map[string]string{"Content-Type": "application/json; ;;="}, body: initialize,
			status: 415, code: jsonrpc.CodeInvalidRequest},
		{name: "Content-Type with charset", headers: map[string]string{"Content-Type": "application/json; charset=utf-8"}, body: initialize,
			status: 503, code: jsonrpc.CodeInternalError, id: "1"},
		{name: "no Content-Type", noCT: true, body: initialize,
			status: 503, code: jsonrpc.CodeInternalError, id: "1"},
		{name: "Accept without json or sse", headers: map[string]string{"Accept": "text/html"}, body: initialize,
			status: 406, code: jsonrpc.CodeInvalidRequest},
		{name: "Accept sse only", headers: map[string]string{"Accept": "text/event-stream"}, body: initialize,
			status: 503, code: jsonrpc.CodeInternalError, id: "1"},
		{name: "Accept wildcard", headers: map[string]string{"Accept": "*/*"}, body: initialize,
			status: 503, code: jsonrpc.CodeInternalError, id: "1"},
		{name: "body over MaxBodyBytes", cfg: func(c *gateway.Config) { c.MaxBodyBytes = 64 },
			body:   `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("x", 100) + `"}}`,
			status: 413, code: jsonrpc.CodeInvalidRequest},
		{name: "body within MaxBodyBytes", cfg: func(c *gateway.Config) { c.MaxBodyBytes = int64(len(initialize)) },
			body: initialize, status: 503, code: jsonrpc.CodeInternalError, id: "1"},

		// JSON-RPC validation
		{name: "invalid JSON", body: `{"jsonrpc":"2.0","id":1,`, status: 400, code: jsonrpc.CodeParseError},
		{name: "empty body", body: ``, status: 400, code: jsonrpc.CodeParseError},
		{name: "batch", body: `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]`,
			status: 400, code: jsonrpc.CodeInvalidRequest},
		{name: "invalid batch", body: `[{"jsonrpc":"2.0"`, status: 400, code: jsonrpc.CodeParseError},
		{name: "JSON that is not an object", body: `"ping"`, status: 400, code: jsonrpc.CodeInvalidRequest},
		{name: "jsonrpc 1.0", body: `{"jsonrpc":"1.0","id":1,"method":"initialize","params":{}}`,
			status: 400, code: jsonrpc.CodeInvalidRequest, id: "1"},
		{name: "jsonrpc missing", body: `{"id":"x","method":"initialize","params":{}}`,
			status: 400, code: jsonrpc.CodeInvalidRequest, id: `"x"`},
		{name: "null id", body: `{"jsonrpc":"2.0","id":null,"method":"initialize","params":{}}`,
			status: 400, code: jsonrpc.CodeInvalidRequest},
		{name: "boolean id is not echoed", body: `{"jsonrpc":"2.0","id":true,"method":"initialize","params":{}}`,
			status: 400, code: jsonrpc.CodeInvalidRequest},
		{name: "object id is not echoed", body: `{"jsonrpc":"2.0","id":{"a":1},"method":"initialize","params":{}}`,
			status: 400, code: jsonrpc.CodeInvalidRequest},
		{name: "method not a string", body: `{"jsonrpc":"2.0","id":1,"method":5}`,
			status: 400, code: jsonrpc.CodeInvalidRequest},
		{name: "empty method", body: `{"jsonrpc":"2.0","id":1,"method":""}`,
			status: 400, code: jsonrpc.CodeInvalidRequest, id: "1"},
		{name: "params array", body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":[1]}`,
			status: 400, code: jsonrpc.CodeInvalidParams, id: "1"},
		{name: "params string", body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":"x"}`,
			status: 400, code: jsonrpc.CodeInvalidParams, id: "1"},
		{name: "neither method nor result", body: `{"jsonrpc":"2.0","id":1}`,
			status: 400, code: jsonrpc.CodeInvalidRequest, id: "1"},
		{name: "response without id", headers: sess, body: `{"jsonrpc":"2.0","result":{}}`,
			status: 400, code: jsonrpc.CodeInvalidRequest},

		// sessions
		{name: "initialize", body: initialize, status: 503, code: jsonrpc.CodeInternalError, id: "1", metric: "initialize unavailable",
			check: func(t *testing.T, resp *http.Response, _ rpcResponse) {
				if resp.Header.Get("Mcp-Session-Id") != "" {
					t.Errorf("a session id was handed out for a request that was not accepted")
				}
			}},
		{name: "initialize with a session id", headers: sess, body: initialize,
			status: 400, code: jsonrpc.CodeInvalidRequest, id: "1", metric: "initialize rejected"},
		{name: "request in a session", headers: sess, body: ping, status: 503, code: jsonrpc.CodeInternalError, id: `"a-1"`, metric: "ping unavailable"},
		{name: "notification in a session", headers: sess, body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			status: 503, code: jsonrpc.CodeInternalError},
		{name: "client response in a session", headers: sess, body: `{"jsonrpc":"2.0","id":5,"result":{}}`,
			status: 503, code: jsonrpc.CodeInternalError, id: "null", metric: "response unavailable"},
		{name: "malformed session id", headers: map[string]string{"Mcp-Session-Id": "has space"}, body: ping,
			status: 400, code: jsonrpc.CodeInvalidRequest, id: `"a-1"`},
		{name: "overlong session id", headers: map[string]string{"Mcp-Session-Id": strings.Repeat("a", 129)}, body: ping,
			status: 400, code: jsonrpc.CodeInvalidRequest, id: `"a-1"`},
		{name: "request without session", body: ping, status: 400, code: jsonrpc.CodeInvalidRequest, id: `"a-1"`, metric: "ping rejected"},
		{name: "notification without session", body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			status: 400, code: jsonrpc.CodeInvalidRequest},
		{name: "initialize as a notification needs a session", body: `{"jsonrpc":"2.0","method":"initialize","params":{}}`,
			status: 400, code: jsonrpc.CodeInvalidRequest},

		// 2026-07-28 stateless requests
		{name: "stateless tools/call", headers: statelessHeaders("tools/call", "test_simple_text"), body: statelessCall("test_simple_text"),
			status: 503, code: jsonrpc.CodeInternalError, id: "3", metric: "tools/call unavailable"},
		{name: "stateless server/discover", headers: statelessHeaders("server/discover", ""), body: discover,
			status: 503, code: jsonrpc.CodeInternalError, id: "4"},
		{name: "Mcp-Method mismatch", headers: statelessHeaders("tools/list", "test_simple_text"), body: statelessCall("test_simple_text"),
			status: 400, code: jsonrpc.CodeHeaderMismatch, id: "3", metric: "tools/call rejected"},
		{name: "Mcp-Method missing", headers: map[string]string{"Mcp-Protocol-Version": v2026, "Mcp-Name": "test_simple_text"}, body: statelessCall("test_simple_text"),
			status: 400, code: jsonrpc.CodeHeaderMismatch, id: "3"},
		{name: "MCP-Protocol-Version missing while _meta has one", headers: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "test_simple_text"},
			body: statelessCall("test_simple_text"), status: 400, code: jsonrpc.CodeHeaderMismatch, id: "3"},
		{name: "MCP-Protocol-Version differs from _meta", headers: statelessHeaders("tools/call", "test_simple_text"),
			body:   statelessBody(3, "tools/call", map[string]any{"name": "test_simple_text"}, map[string]any{"io.modelcontextprotocol/protocolVersion": "2099-01-01"}),
			status: 400, code: jsonrpc.CodeHeaderMismatch, id: "3"},
		{name: "2025-11-25 header decides: stateless body without session", headers: merge(statelessHeaders("tools/call", "test_simple_text"), map[string]string{"Mcp-Protocol-Version": "2025-11-25"}),
			body: statelessCall("test_simple_text"), status: 400, code: jsonrpc.CodeInvalidRequest, id: "3"},
		{name: "2026-07-28 header decides: session id ignored", headers: merge(statelessHeaders("tools/call", "test_simple_text"), map[string]string{"Mcp-Session-Id": validSess}),
			body: statelessCall("test_simple_text"), status: 503, code: jsonrpc.CodeInternalError, id: "3"},
		{name: "stateless header without _meta", headers: statelessHeaders("tools/list", ""), body: `{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{}}`,
			status: 400, code: jsonrpc.CodeInvalidParams, id: "9"},
		{name: "stateless header without params", headers: statelessHeaders("tools/list", ""), body: `{"jsonrpc":"2.0","id":9,"method":"tools/list"}`,
			status: 400, code: jsonrpc.CodeInvalidParams, id: "9"},
		{name: "_meta without protocolVersion", headers: statelessHeaders("tools/list", ""),
			body:   statelessBody(9, "tools/list", nil, map[string]any{"io.modelcontextprotocol/protocolVersion": nil}),
			status: 400, code: jsonrpc.CodeInvalidParams, id: "9"},
		{name: "_meta without clientCapabilities", headers: statelessHeaders("tools/list", ""),
			body:   statelessBody(9, "tools/list", nil, map[string]any{"io.modelcontextprotocol/clientCapabilities": nil}),
			status: 400, code: jsonrpc.CodeInvalidParams, id: "9"},
		{name: "_meta clientCapabilities not an object", headers: statelessHeaders("tools/list", ""),
			body:   statelessBody(9, "tools/list", nil, map[string]any{"io.modelcontextprotocol/clientCapabilities": []int{1}}),
			status: 400, code: jsonrpc.CodeInvalidParams, id: "9"},
		{name: "unknown pre-2026 version is unsupported, not a missing session", headers: merge(statelessHeaders("tools/list", ""), map[string]string{"Mcp-Protocol-Version": "2026-01-15"}),
			body:   statelessBody(9, "tools/list", nil, map[string]any{"io.modelcontextprotocol/protocolVersion": "2026-01-15"}),
			status: 400, code: jsonrpc.CodeUnsupportedProtocolVersion, id: "9"},
		{name: "unsupported _meta version", headers: merge(statelessHeaders("tools/list", ""), map[string]string{"Mcp-Protocol-Version": "2099-01-01"}),
			body:   statelessBody(9, "tools/list", nil, map[string]any{"io.modelcontextprotocol/protocolVersion": "2099-01-01"}),
			status: 400, code: jsonrpc.CodeUnsupportedProtocolVersion, id: "9",
			check: func(t *testing.T, _ *http.Response, r rpcResponse) {
				var data struct {
					Supported []string `json:"supported"`
					Requested string   `json:"requested"`
				}
				if err := json.Unmarshal(r.Error.Data, &data); err != nil {
					t.Fatalf("error data %s: %v", r.Error.Data, err)
				}
				if !slices.Contains(data.Supported, v2026) || data.Requested != "2099-01-01" {
					t.Errorf("error data = %s, want supported to list %s and requested 2099-01-01", r.Error.Data, v2026)
				}
			}},
		{name: "Mcp-Name missing", headers: statelessHeaders("tools/call", ""), body: statelessCall("test_simple_text"),
			status: 400, code: jsonrpc.CodeHeaderMismatch, id: "3"},
		{name: "Mcp-Name mismatch", headers: statelessHeaders("tools/call", "other"), body: statelessCall("test_simple_text"),
			status: 400, code: jsonrpc.CodeHeaderMismatch, id: "3"},
		{name: "Mcp-Name base64 sentinel decoded", headers: statelessHeaders("tools/call", b64("test_simple_text")), body: statelessCall("test_simple_text"),
			status: 503, code: jsonrpc.CodeInternalError, id: "3"},
		{name: "Mcp-Name base64 sentinel for a non-ASCII name", headers: statelessHeaders("tools/call", b64("outil_é✓")), body: statelessCall("outil_é✓"),
			status: 503, code: jsonrpc.CodeInternalError, id: "3"},
		{name: "Mcp-Name base64 sentinel mismatch", headers: statelessHeaders("tools/call", b64("other")), body: statelessCall("test_simple_text"),
			status: 400, code: jsonrpc.CodeHeaderMismatch, id: "3"},
		{name: "Mcp-Name invalid base64", headers: statelessHeaders("tools/call", "=?base64?!!!?="), body: statelessCall("test_simple_text"),
			status: 400, code: jsonrpc.CodeHeaderMismatch, id: "3"},
		{name: "Mcp-Name raw non-ASCII", headers: statelessHeaders("tools/call", "outil_é"), body: statelessCall("outil_é"),
			status: 400, code: jsonrpc.CodeHeaderMismatch, id: "3"},
		{name: "Mcp-Name sentinel text that is not base64-wrapped is literal", headers: statelessHeaders("tools/call", "=?base64?"), body: statelessCall("=?base64?"),
			status: 503, code: jsonrpc.CodeInternalError, id: "3"},

		// DELETE
		{name: "DELETE without session", method: http.MethodDelete, status: 400, code: jsonrpc.CodeInvalidRequest, metric: "DELETE rejected"},
		{name: "DELETE with malformed session", method: http.MethodDelete, headers: map[string]string{"Mcp-Session-Id": "bad\x7fid"},
			status: 400, code: jsonrpc.CodeInvalidRequest},
		{name: "DELETE with session", method: http.MethodDelete, headers: sess, status: 503, code: jsonrpc.CodeInternalError, metric: "DELETE unavailable"},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, m := newGateway(t, tc.cfg)
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			r := httptest.NewRequest(method, "http://127.0.0.1:8080/mcp", strings.NewReader(tc.body))
			if tc.host != "" {
				r.Host = tc.host
			}
			if method == http.MethodPost {
				if !tc.noCT {
					r.Header.Set("Content-Type", "application/json")
				}
				r.Header.Set("Accept", "application/json, text/event-stream")
			}
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			g.Handler().ServeHTTP(rec, r)
			resp := rec.Result()
			defer resp.Body.Close()

			if resp.StatusCode != tc.status {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.status, b)
			}
			rpc := decodeRPC(t, resp)
			if rpc.Error.Code != tc.code {
				t.Errorf("error code = %d (%s), want %d", rpc.Error.Code, rpc.Error.Message, tc.code)
			}
			wantID := tc.id
			if wantID == "" {
				wantID = "null"
			}
			if string(rpc.ID) != wantID {
				t.Errorf("id = %s, want %s", rpc.ID, wantID)
			}
			if tc.status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if tc.status != http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
				t.Errorf("Retry-After on a %d", tc.status)
			}
			if tc.check != nil {
				tc.check(t, resp, rpc)
			}
			calls := m.take()
			if len(calls) != 1 {
				t.Fatalf("Metrics.Request called %d times (%v), want once", len(calls), calls)
			}
			if tc.metric != "" && calls[0] != tc.metric {
				t.Errorf("metrics = %q, want %q", calls[0], tc.metric)
			}
		})
	}
}

// TestServeHTTPOverTheNetwork checks the Host and Origin rules with real
// HTTP requests, where the Host header is 127.0.0.1:<port>.
func TestServeHTTPOverTheNetwork(t *testing.T) {
	g, _ := newGateway(t, nil)
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	const body = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`

	cases := []struct {
		name   string
		host   string
		origin string
		status int
		code   int
	}{
		{name: "loopback host", status: 503, code: jsonrpc.CodeInternalError},
		{name: "localhost origin", origin: "http://localhost:5173", status: 503, code: jsonrpc.CodeInternalError},
		{name: "rebound DNS name", host: "evil.example", status: 403, code: jsonrpc.CodeInvalidRequest},
		{name: "foreign origin", origin: "http://evil.example", status: 403, code: jsonrpc.CodeInvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodPost, srv.URL+"/mcp", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Accept", "application/json, text/event-stream")
			if tc.host != "" {
				r.Host = tc.host
			}
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			resp, err := srv.Client().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if rpc := decodeRPC(t, resp); rpc.Error.Code != tc.code {
				t.Errorf("code = %d, want %d", rpc.Error.Code, tc.code)
			}
		})
	}
}

func TestNew(t *testing.T) {
	cases := []struct {
		name    string
		cfg     gateway.Config
		wantErr bool
	}{
		{name: "no brokers", cfg: gateway.Config{}, wantErr: true},
		{name: "negative partitions", cfg: gateway.Config{Streams: streams.Config{Brokers: []string{"127.0.0.1:1"}, Partitions: -1}}, wantErr: true},
		{name: "random id", cfg: gateway.Config{Streams: streams.Config{Brokers: []string{"127.0.0.1:1"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := gateway.New(schemas.MustLoad(), tc.cfg)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && !strings.HasPrefix(g.ID(), "gw-") {
				t.Errorf("ID = %q, want a generated gw- id", g.ID())
			}
		})
	}
}
