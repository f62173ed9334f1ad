package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpstream/mcpstream/tools"
)

const orderCalls = 300

// The trap the taps exist for (see tap.go): with the go-sdk client's own
// ProgressNotificationHandler, a progress notification the server sent
// before its result is often handled after CallTool has returned. Seen
// here: 57-84 of 600 notifications late. If this test ever fails, the SDK
// orders them now and the taps could go.
func TestTrapSDKProgressHandlerRunsAfterResult(t *testing.T) {
	ev := serverEverything(t)
	var mu sync.Mutex
	counts := map[string]int{}
	c := mcp.NewClient(&mcp.Implementation{Name: "trap", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			counts[fmt.Sprint(r.Params.ProgressToken)]++
			mu.Unlock()
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.CommandTransport{Command: exec.Command(ev.node, ev.entry)},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	atReturn := map[string]int{}
	for i := range orderCalls {
		tok := fmt.Sprint("t", i)
		p := &mcp.CallToolParams{Name: "trigger-long-running-operation", Arguments: map[string]any{"duration": 0.002, "steps": 2}}
		p.SetProgressToken(tok)
		if _, err := cs.CallTool(ctx, p); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		atReturn[tok] = counts[tok]
		mu.Unlock()
	}
	time.Sleep(200 * time.Millisecond)
	late := 0
	mu.Lock()
	for tok, n := range atReturn {
		late += counts[tok] - n
	}
	mu.Unlock()
	t.Logf("go-sdk handler: %d of %d progress notifications handled after their call returned", late, 2*orderCalls)
	if late == 0 {
		t.Errorf("the go-sdk client handled every progress notification before CallTool returned; " +
			"the ordering trap the taps work around may be gone")
	}
}

// The same load through the provider: every notification is forwarded,
// in order, before its call returns.
func TestProgressNeverAfterResult(t *testing.T) {
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, tc.cfg(t, newMarker(t)), Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var recs []*recorder
			for range orderCalls {
				rec := &recorder{}
				_, err := p.CallTool(ctx, tools.Call{Name: "trigger-long-running-operation",
					Arguments: json.RawMessage(`{"duration":0.002,"steps":2}`), ProgressToken: json.RawMessage(`"x"`),
					SessionID: "s"}, rec)
				rec.markReturned()
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, rec)
			}
			time.Sleep(200 * time.Millisecond)
			bad := 0
			for _, rec := range recs {
				rec.mu.Lock()
				if rec.late != 0 || len(rec.progress) != 2 || rec.progress[0] != 1 || rec.progress[1] != 2 {
					bad++
				}
				rec.mu.Unlock()
			}
			if bad != 0 {
				t.Errorf("%d of %d calls got progress late, missing or out of order", bad, orderCalls)
			}
		})
	}
}
