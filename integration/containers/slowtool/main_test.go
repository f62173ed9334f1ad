package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The suite's exactly-once checks trust these counts and this progress
// sequence, so they are pinned here.
func TestProgressAndCounts(t *testing.T) {
	c := &counts{Started: map[string]int{}, Finished: map[string]int{}}
	srv := newServer(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	mux.Handle("GET /executions", c)
	hs := httptest.NewServer(mux)
	defer hs.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	var seen []float64
	cl := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			seen = append(seen, r.Params.Progress)
			mu.Unlock()
		}})
	cs, err := cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: hs.URL + "/mcp"}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for i := range 2 {
		p := &mcp.CallToolParams{Name: "progress", Arguments: map[string]any{"id": "a", "steps": 3, "step_ms": 5}}
		p.SetProgressToken(fmt.Sprint("tok", i))
		res, err := cs.CallTool(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != "done a" || res.IsError {
			t.Fatalf("result %+v, want text \"done a\"", res.Content[0])
		}
	}
	// The go-sdk client hands notifications to another goroutine than
	// responses: the last progress of a call may land after CallTool
	// returned. Wait for it, bounded.
	var got []float64
	for deadline := time.Now().Add(5 * time.Second); ; {
		mu.Lock()
		got = slices.Clone(seen)
		mu.Unlock()
		if len(got) >= 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Order across the two calls is the SDK's (see above); the counts are
	// the tool's.
	slices.Sort(got)
	if want := []float64{1, 1, 2, 2, 3, 3}; !slices.Equal(got, want) {
		t.Fatalf("progress %v, want %v", got, want)
	}
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "progress", Arguments: map[string]any{"steps": 1}}); err == nil && !res.IsError {
		t.Fatal("a call without id was accepted")
	}

	resp, err := http.Get(hs.URL + "/executions")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Started, Finished map[string]int }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v.Started["a"] != 2 || v.Finished["a"] != 2 || len(v.Started) != 1 {
		t.Fatalf("executions %+v, want a started and finished twice, nothing else", v)
	}
}
