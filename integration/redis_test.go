package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/projections/redis/redistest"
)

func statelessList(t *testing.T, url string, id int) int {
	t.Helper()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`, id)
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/list")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func metricValue(t *testing.T, opsURL, series string) string {
	t.Helper()
	_, body := httpGet(t, opsURL+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimPrefix(line, series+" ")
		}
	}
	return ""
}

// TestRedisProjectionAndCache: with Redis, sessions are projected into it
// and repeated stateless lists are answered from the gateway's cache; with
// Redis stopped, everything keeps working through the log, and the
// projection catches up when Redis returns.
func TestRedisProjectionAndCache(t *testing.T) {
	rs := redistest.Start(t)
	b := startBroker(t, "")
	cfg := roleConfig(b, "p1", newCounter())
	cfg.Processor, cfg.Executor, cfg.Gateway = true, true, true
	cfg.RedisAddr, cfg.RedisProjector = rs.Addr(), true
	r := startRole(t, cfg)
	ops := strings.TrimSuffix(r.ready.MCPURL, "/mcp")
	cached := `mcpstream_requests_total{gateway="gw-p1",method="tools/list",outcome="ok_cached"}`

	stored := `mcpstream_cache_stores_total{gateway="gw-p1",kind="result",outcome="stored"}`
	for i := 1; i <= 3; i++ {
		if code := statelessList(t, r.ready.MCPURL, i); code != 200 {
			t.Fatalf("tools/list %d: %d", i, code)
		}
		// The gateway stores a result after answering; wait for it.
		for deadline := time.Now().Add(5 * time.Second); metricValue(t, ops, stored) != "1"; {
			if time.Now().After(deadline) {
				t.Fatalf("tools/list result not stored in the cache")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := metricValue(t, ops, cached); got != "2" {
		t.Fatalf("cached tools/list answers = %q, want 2 of 3", got)
	}

	rc := rs.Client()
	waitKey := func(sid string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			n, err := rc.Exists(context.Background(), "mcpstream:session:{"+sid+"}").Result()
			if err == nil && n == 1 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("session %s not projected into Redis (err %v)", sid, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	sid := initSession(t, r.ready.MCPURL)
	waitKey(sid)

	// Redis goes away: sessions and calls keep working through the log.
	rs.Kill()
	sid2 := initSession(t, r.ready.MCPURL)
	for i := 0; i < 20; i++ {
		if resp, body := rawPost(t, r.ready.MCPURL, sid2, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"count"}}`, i+1)); resp.StatusCode != 200 {
			t.Fatalf("call %d with Redis down: %d %s", i, resp.StatusCode, body)
		}
	}
	for i := 10; i < 13; i++ {
		if code := statelessList(t, r.ready.MCPURL, i); code != 200 {
			t.Fatalf("tools/list with Redis down: %d", code)
		}
	}
	// Redis returns (empty): the projection catches up with both sessions.
	rs.Restart()
	rc = rs.Client()
	waitKey(sid)
	waitKey(sid2)
}
