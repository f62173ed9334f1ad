package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpstream/mcpstream/processors/notify"
)

// TestInternalNotificationsFromClientsAreIgnored: the gateways' own
// notifications to the sessions processor never come from a client; one
// that tries is accepted and dropped (never produced, never waited for).
func TestInternalNotificationsFromClientsAreIgnored(t *testing.T) {
	g, _ := newGateway(t, nil)
	for _, method := range []string{notify.CheckSubscription, notify.StreamOpened} {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/mcp",
			strings.NewReader(`{"jsonrpc":"2.0","method":"`+method+`","params":{"uri":"test://x"}}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json, text/event-stream")
		r.Header.Set("Mcp-Session-Id", validSess)
		r.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		rec := httptest.NewRecorder()
		// Not ready: anything that went on to the log would be 503.
		g.Handler().ServeHTTP(rec, r)
		if rec.Code != http.StatusAccepted || rec.Body.Len() != 0 {
			t.Errorf("%s: status %d body %q, want 202 and nothing", method, rec.Code, rec.Body.String())
		}
	}
}
