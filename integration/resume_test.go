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

	"github.com/mcpstream/mcpstream/tools"
)

// slowProgress is a tool that reports progress `steps` times, `every` apart.
type slowProgress struct {
	steps int
	every time.Duration
}

func (s slowProgress) Name() string { return "slow" }

func (s slowProgress) ListTools(context.Context) ([]tools.Tool, error) {
	return []tools.Tool{{Name: "slow_progress", InputSchema: json.RawMessage(`{"type":"object"}`)}}, nil
}

func (s slowProgress) CallTool(ctx context.Context, call tools.Call, n tools.Notifier) (*tools.Result, error) {
	for i := 1; i <= s.steps; i++ {
		select {
		case <-time.After(s.every):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err := n.Progress(ctx, float64(i), float64(s.steps), ""); err != nil {
			return nil, err
		}
	}
	text, _ := json.Marshal(map[string]string{"type": "text", "text": "done"})
	return &tools.Result{Content: []json.RawMessage{text}}, nil
}

type sseEvent struct {
	id   string
	data string
}

// readEvents reads SSE events from resp until it has max events with data
// (max <= 0: until the stream ends), then closes the body: the cut.
func readEvents(t *testing.T, resp *http.Response, max int) (events []sseEvent, lastID string) {
	t.Helper()
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var cur sseEvent
	got := 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data:"):
			cur.data = strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		case line == "":
			if cur.id != "" {
				lastID = cur.id
			}
			if cur.data != "" {
				events = append(events, cur)
				got++
				if max > 0 && got == max {
					return events, lastID
				}
			}
			cur = sseEvent{}
		}
	}
	return events, lastID
}

func sseRequest(t *testing.T, method, url, session, lastID, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		t.Fatalf("%s %s: status %d, content type %q", method, url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp
}

// TestResumeOnOtherGateway: a long call streams progress; its stream is cut
// twice and resumed with Last-Event-ID, each time at the other gateway. The
// client sees every progress event once, in order, then the result.
func TestResumeOnOtherGateway(t *testing.T) {
	b := startBroker(t, "")
	pcfg := roleConfig(b, "proc", slowProgress{steps: 9, every: 150 * time.Millisecond})
	pcfg.Processor, pcfg.Executor = true, true
	startRole(t, pcfg)
	g1cfg, g2cfg := roleConfig(b, "gw-a"), roleConfig(b, "gw-b")
	g1cfg.Gateway, g2cfg.Gateway = true, true
	g1, g2 := startRole(t, g1cfg), startRole(t, g2cfg)
	sid := initSession(t, g1.ready.MCPURL)

	call := `{"jsonrpc":"2.0","id":"long-1","method":"tools/call","params":{"name":"slow_progress","arguments":{},"_meta":{"progressToken":"pt"}}}`
	first, last := readEvents(t, sseRequest(t, http.MethodPost, g1.ready.MCPURL, sid, "", call), 3)
	if last == "" {
		t.Fatal("stream events carry no ids: nothing to resume from")
	}
	second, last2 := readEvents(t, sseRequest(t, http.MethodGet, g2.ready.MCPURL, sid, last, ""), 3)
	if last2 == "" {
		t.Fatal("resumed events carry no ids")
	}
	third, _ := readEvents(t, sseRequest(t, http.MethodGet, g1.ready.MCPURL, sid, last2, ""), 0)

	all := append(append(first, second...), third...)
	var progress []float64
	var result string
	for _, e := range all {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Progress float64 `json:"progress"`
			} `json:"params"`
			Result *struct {
				Content []struct{ Text string } `json:"content"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(e.data), &m); err != nil {
			t.Fatalf("event %q: %v", e.data, err)
		}
		switch {
		case m.Method == "notifications/progress":
			if result != "" {
				t.Fatal("progress after the result")
			}
			progress = append(progress, m.Params.Progress)
		case m.Result != nil:
			if string(m.ID) != `"long-1"` {
				t.Fatalf("result id %s, want \"long-1\"", m.ID)
			}
			result = m.Result.Content[0].Text
		}
	}
	want := fmt.Sprint([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9})
	if got := fmt.Sprint(progress); got != want {
		t.Fatalf("progress seen %s, want %s exactly once each, in order", got, want)
	}
	if result != "done" {
		t.Fatalf("result %q, want done", result)
	}

	// A forged event id is refused, and one of another session shows nothing.
	req, _ := http.NewRequest(http.MethodGet, g2.ready.MCPURL, nil)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Last-Event-ID", "not-an-id")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("forged Last-Event-ID: %d, want 400", resp.StatusCode)
	}
}
