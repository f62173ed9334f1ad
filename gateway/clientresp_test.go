package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Responses to a tool's requests are checked before anything is produced:
// these never reach the log (the gateway under test has no broker, so
// anything that passed would end in 503).
func TestClientResponseRefusedAtTheGateway(t *testing.T) {
	g, _ := newGateway(t, nil)
	for name, c := range map[string]struct {
		headers map[string]string
		id      string
		status  int
		want    string
	}{
		"no session": {map[string]string{"MCP-Protocol-Version": "2025-11-25"}, "mcpstream/x1/abcdef123456/1", 400, "needs the Mcp-Session-Id"},
		"stateless revision": {map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Session-Id": "s1"},
			"mcpstream/x1/abcdef123456/1", 400, "2026-07-28 has no server-to-client requests"},
		"malformed id": {map[string]string{"MCP-Protocol-Version": "2025-11-25", "Mcp-Session-Id": "s1"}, "mcpstream/x1", 400, "unknown request id"},
		"well formed":  {map[string]string{"MCP-Protocol-Version": "2025-11-25", "Mcp-Session-Id": "s1"}, "mcpstream/x1/abcdef123456/1", 503, "starting"},
	} {
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp",
			strings.NewReader(`{"jsonrpc":"2.0","id":"`+c.id+`","result":{"action":"accept"}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range c.headers {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		g.Handler().ServeHTTP(rec, req)
		resp := rec.Result()
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", name, resp.StatusCode, c.status)
		}
		r := decodeRPC(t, resp)
		if string(r.ID) != "null" || !strings.Contains(r.Error.Message, c.want) {
			t.Errorf("%s: id %s, error %q; want no id and %q", name, r.ID, r.Error.Message, c.want)
		}
	}
}
