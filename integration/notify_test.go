package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/ops/platform"
	"github.com/mcpstream/mcpstream/processors/notify"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

// notifyCluster is a processor (with an executor and the conformance
// fixtures, whose trigger tools publish list changes) and two gateways.
type notifyCluster struct {
	b      *streams.Broker
	gwA    string
	gwB    string
	config streams.Config
	roleB  *role
}

func startNotifyCluster(t *testing.T, idle time.Duration) *notifyCluster {
	t.Helper()
	b := startBroker(t, "")
	sc := streams.Config{Brokers: b.Addrs()}
	startRole(t, platform.Config{InstanceID: "proc", Streams: sc, Processor: true, Executor: true,
		ConformanceTools: true, SessionIdleTimeout: idle})
	a := startRole(t, platform.Config{InstanceID: "gw-a", Streams: sc, Gateway: true})
	bb := startRole(t, platform.Config{InstanceID: "gw-b", Streams: sc, Gateway: true})
	return &notifyCluster{b: b, gwA: a.ready.MCPURL, gwB: bb.ready.MCPURL, config: sc, roleB: bb}
}

// feed is an open SSE response whose data lines arrive on ch (closed at
// the end of the stream).
type feed struct {
	ch chan string
}

func openFeed(t *testing.T, req *http.Request) *feed {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		t.Fatalf("%s %s: status %d, content type %q; want an SSE stream", req.Method, req.URL, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { resp.Body.Close() })
	f := &feed{ch: make(chan string, 64)}
	go func() {
		defer close(f.ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data:"); ok && strings.TrimSpace(d) != "" {
				f.ch <- strings.TrimSpace(d)
			}
		}
	}()
	return f
}

type frame struct {
	ID     json.RawMessage `json:"id"`
	Result *struct {
		ResultType string         `json:"resultType"`
		Meta       map[string]any `json:"_meta"`
	} `json:"result"`
	Method string `json:"method"`
	Params struct {
		URI           string          `json:"uri"`
		Notifications json.RawMessage `json:"notifications"`
		Meta          map[string]any  `json:"_meta"`
	} `json:"params"`
}

// next returns the next frame within d; ok is false on timeout, ended on
// the end of the stream.
func (f *feed) next(t *testing.T, d time.Duration) (fr frame, ok, ended bool) {
	t.Helper()
	select {
	case s, open := <-f.ch:
		if !open {
			return fr, false, true
		}
		if err := json.Unmarshal([]byte(s), &fr); err != nil {
			t.Fatalf("frame %q: %v", s, err)
		}
		return fr, true, false
	case <-time.After(d):
		return fr, false, false
	}
}

func (f *feed) want(t *testing.T, method string, d time.Duration) frame {
	t.Helper()
	fr, ok, ended := f.next(t, d)
	if !ok {
		t.Fatalf("no %s within %s (stream ended: %v)", method, d, ended)
	}
	if fr.Method != method {
		t.Fatalf("got %s (%+v), want %s", fr.Method, fr.Params, method)
	}
	return fr
}

func (f *feed) wantNothing(t *testing.T, d time.Duration) {
	t.Helper()
	if fr, ok, _ := f.next(t, d); ok {
		t.Fatalf("unexpected frame %s %+v", fr.Method, fr.Params)
	}
}

// statelessRequest builds a 2026-07-28 request.
func statelessRequest(t *testing.T, endpoint, method, name string, id any, params map[string]any) *http.Request {
	t.Helper()
	if params == nil {
		params = map[string]any{}
	}
	params["_meta"] = map[string]any{"io.modelcontextprotocol/protocolVersion": "2026-07-28",
		"io.modelcontextprotocol/clientCapabilities": map[string]any{}}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	if name != "" {
		req.Header.Set("Mcp-Name", name)
	}
	return req
}

func statelessCall(t *testing.T, endpoint, tool string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(statelessRequest(t, endpoint, "tools/call", tool, 1, map[string]any{"name": tool, "arguments": map[string]any{}}))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text())
	}
	if resp.StatusCode != 200 || !strings.Contains(b.String(), "published") {
		t.Fatalf("%s: %d %s", tool, resp.StatusCode, b.String())
	}
}

// TestListenAcrossGateways: 2026-07-28 subscriptions/listen streams held by
// one gateway get the list changes a tool call through the other gateway
// caused, filtered as asked and tagged with the subscription id.
func TestListenAcrossGateways(t *testing.T) {
	c := startNotifyCluster(t, 0)

	resp, err := http.DefaultClient.Do(statelessRequest(t, c.gwA, "server/discover", "", 1, nil))
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Result struct {
			Capabilities struct {
				Tools   map[string]any `json:"tools"`
				Prompts map[string]any `json:"prompts"`
			} `json:"capabilities"`
		} `json:"result"`
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if err != nil || disc.Result.Capabilities.Tools["listChanged"] != true || disc.Result.Capabilities.Prompts["listChanged"] != true {
		t.Fatalf("discover: tools %v prompts %v (err %v); want listChanged on both", disc.Result.Capabilities.Tools, disc.Result.Capabilities.Prompts, err)
	}

	toolsOnB := openFeed(t, statelessRequest(t, c.gwB, "subscriptions/listen", "", "sub-1",
		map[string]any{"notifications": map[string]any{"toolsListChanged": true}}))
	ack := toolsOnB.want(t, "notifications/subscriptions/acknowledged", 5*time.Second)
	if ack.Params.Meta["io.modelcontextprotocol/subscriptionId"] != "sub-1" || !strings.Contains(string(ack.Params.Notifications), `"toolsListChanged":true`) {
		t.Fatalf("ack %+v: want subscription id sub-1 and toolsListChanged agreed", ack.Params)
	}
	promptsOnA := openFeed(t, statelessRequest(t, c.gwA, "subscriptions/listen", "", 7,
		map[string]any{"notifications": map[string]any{"promptsListChanged": true}}))
	promptsOnA.want(t, "notifications/subscriptions/acknowledged", 5*time.Second)

	start := time.Now()
	statelessCall(t, c.gwA, "test_trigger_tool_change")
	fr := toolsOnB.want(t, "notifications/tools/list_changed", 5*time.Second)
	t.Logf("tools/list_changed reached the listen stream on the other gateway %s after the trigger call started", time.Since(start).Round(time.Millisecond))
	if fr.Params.Meta["io.modelcontextprotocol/subscriptionId"] != "sub-1" {
		t.Errorf("list_changed not tagged with the subscription id: %+v", fr.Params.Meta)
	}

	statelessCall(t, c.gwB, "test_trigger_prompt_change")
	// The tools change came first: had the prompts-only filter leaked it,
	// it would be the next frame here.
	fr = promptsOnA.want(t, "notifications/prompts/list_changed", 5*time.Second)
	if id, _ := fr.Params.Meta["io.modelcontextprotocol/subscriptionId"].(float64); id != 7 {
		t.Errorf("prompts list_changed tagged %v, want 7", fr.Params.Meta)
	}
	toolsOnB.wantNothing(t, time.Second)
	promptsOnA.wantNothing(t, 100*time.Millisecond)

	// A gateway that stops ends its subscriptions gracefully: the result of
	// the listen request, then the end of the stream.
	go c.roleB.stop()
	fr, ok, _ := toolsOnB.next(t, 10*time.Second)
	if !ok || string(fr.ID) != `"sub-1"` || fr.Result == nil || fr.Result.ResultType != "complete" ||
		fr.Result.Meta["io.modelcontextprotocol/subscriptionId"] != "sub-1" {
		t.Fatalf("on gateway stop: frame %v %+v, want the listen result for sub-1", ok, fr)
	}
	if _, ok, ended := toolsOnB.next(t, 10*time.Second); ok || !ended {
		t.Fatalf("stream still open after the listen result")
	}
}

// TestSessionStreamAcrossGateways: a 2025-11-25 session subscribes through
// gateway A and holds its GET stream on gateway B; resource updates reach it
// only for the subscribed URI and only while subscribed, list changes
// reach it, and the stream ends once the session is deleted.
func TestSessionStreamAcrossGateways(t *testing.T) {
	c := startNotifyCluster(t, 0)
	reg, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := notify.NewPublisher(reg, c.config, "test-publisher", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	sid := initSession(t, c.gwA)
	const watched = "test://watched-resource"
	if resp, body := rawPost(t, c.gwA, sid, `{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"`+watched+`"}}`); resp.StatusCode != 200 || !strings.Contains(string(body), `"result":{}`) {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, body)
	}

	// GET without a session, or with an unknown one, is refused.
	req, _ := http.NewRequest(http.MethodGet, c.gwB, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", "no-such-session")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 404 {
		t.Fatalf("GET of an unknown session: %v %v, want 404", resp.StatusCode, err)
	}

	stream := openFeed(t, sseGet(t, c.gwB, sid))

	if err := pub.ResourceChanged(ctx, "test://static-text"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := pub.ResourceChanged(ctx, watched); err != nil {
		t.Fatal(err)
	}
	fr := stream.want(t, "notifications/resources/updated", 5*time.Second)
	t.Logf("resources/updated reached the GET stream on the other gateway after %s", time.Since(start).Round(time.Millisecond))
	if fr.Params.URI != watched {
		t.Fatalf("resources/updated for %q, want only the subscribed %q", fr.Params.URI, watched)
	}

	// The gateways' internal notifications cannot be sent by a client:
	// accepted and ignored at once (not left waiting for an answer).
	start = time.Now()
	if resp, body := rawPost(t, c.gwB, sid, `{"jsonrpc":"2.0","method":"`+notify.CheckSubscription+`","params":{"uri":"`+watched+`"}}`); resp.StatusCode != 202 || time.Since(start) > 2*time.Second {
		t.Fatalf("client-sent internal notification: %d %s after %s, want 202 at once", resp.StatusCode, body, time.Since(start))
	}

	// A list change caused by a call through gateway A.
	if resp, body := rawPost(t, c.gwA, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_trigger_tool_change","arguments":{}}}`); resp.StatusCode != 200 || !strings.Contains(string(body), "published") {
		t.Fatalf("trigger: %d %s", resp.StatusCode, body)
	}
	stream.want(t, "notifications/tools/list_changed", 5*time.Second)

	if resp, body := rawPost(t, c.gwB, sid, `{"jsonrpc":"2.0","id":3,"method":"resources/unsubscribe","params":{"uri":"`+watched+`"}}`); resp.StatusCode != 200 {
		t.Fatalf("unsubscribe: %d %s", resp.StatusCode, body)
	}
	if err := pub.ResourceChanged(ctx, watched); err != nil {
		t.Fatal(err)
	}
	stream.wantNothing(t, 1500*time.Millisecond)

	// After DELETE the next check finds no session: the stream ends.
	del, _ := http.NewRequest(http.MethodDelete, c.gwA, nil)
	del.Header.Set("Mcp-Session-Id", sid)
	if resp, err := http.DefaultClient.Do(del); err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE: %v %v", resp.StatusCode, err)
	}
	if err := pub.ResourceChanged(ctx, watched); err != nil {
		t.Fatal(err)
	}
	if _, ok, ended := stream.next(t, 5*time.Second); ok || !ended {
		t.Fatalf("stream of a deleted session: frame %v, ended %v; want it ended", ok, ended)
	}
}

func sseGet(t *testing.T, endpoint, sid string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, endpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	return req
}

// TestSessionIdleExpiry: a session unused for longer than the idle timeout
// is deleted from the table by the sweep (a tombstone, without any request
// for it) and answers 404 afterwards through either gateway; a session in
// use is kept.
func TestSessionIdleExpiry(t *testing.T) {
	const timeout = 2 * time.Second
	c := startNotifyCluster(t, timeout)
	idle := initSession(t, c.gwA)
	busy := initSession(t, c.gwB)
	created := time.Now()

	// busy is used every 400 ms for longer than the timeout, through both
	// gateways; idle is left alone.
	for i := 0; time.Since(created) < timeout+time.Second; i++ {
		gw := []string{c.gwA, c.gwB}[i%2]
		if resp, body := rawPost(t, gw, busy, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping","params":{}}`, i+10)); resp.StatusCode != 200 {
			t.Fatalf("ping %d of a session in use, %s after creation: %d %s", i, time.Since(created).Round(time.Millisecond), resp.StatusCode, body)
		}
		time.Sleep(400 * time.Millisecond)
	}

	// The sweep deletes idle's entry by itself.
	cl, err := streams.NewClient(c.config.WithDefaults(), "expiry-test", testLogger(t),
		kgo.ConsumeTopics(streams.Table(c.config.WithDefaults().Topics.SessionsGroup())),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tombstone time.Time
	for tombstone.IsZero() && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if string(r.Key) == idle && r.Value == nil {
				tombstone = r.Timestamp
			}
		})
	}
	if tombstone.IsZero() {
		t.Fatal("no tombstone for the idle session in the sessions table within 10s")
	}
	t.Logf("idle session deleted by the sweep %s after creation (timeout %s)", tombstone.Sub(created).Round(time.Millisecond), timeout)

	for _, gw := range []string{c.gwA, c.gwB} {
		if resp, body := rawPost(t, gw, idle, `{"jsonrpc":"2.0","id":99,"method":"ping","params":{}}`); resp.StatusCode != 404 {
			t.Fatalf("ping of the expired session: %d %s, want 404", resp.StatusCode, body)
		}
	}
	// busy, now left alone, expires too (here the request may find it
	// before the sweep does: 404 either way).
	time.Sleep(timeout + time.Second)
	if resp, body := rawPost(t, c.gwA, busy, `{"jsonrpc":"2.0","id":100,"method":"ping","params":{}}`); resp.StatusCode != 404 {
		t.Fatalf("ping after the timeout: %d %s, want 404", resp.StatusCode, body)
	}
}
