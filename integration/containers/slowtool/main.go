package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// args of the "progress" tool.
type args struct {
	ID      string `json:"id"`                 // echoed in the result
	Steps   int    `json:"steps,omitempty"`    // progress notifications, 1..steps of steps
	StepMS  int    `json:"step_ms,omitempty"`  // pause after each notification but the last
	FirstMS int    `json:"first_ms,omitempty"` // pause before the first notification
}

// Bounds that keep a mistaken caller from holding the server for long.
const (
	maxSteps = 1000
	maxPause = 60_000
)

// counts is what /executions serves: per id, executions started and
// finished (a started one that never finished was cancelled).
type counts struct {
	mu       sync.Mutex
	Started  map[string]int `json:"started"`
	Finished map[string]int `json:"finished"`
}

func (c *counts) add(m map[string]int, id string) {
	c.mu.Lock()
	m[id]++
	c.mu.Unlock()
}

func (c *counts) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	b, err := json.Marshal(c)
	c.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func pause(ctx context.Context, ms int) error {
	if ms <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func newServer(c *counts, log *slog.Logger) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "mcpstream-slowtool", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "progress", Description: "Reports progress 1..steps, step_ms apart (after first_ms), then answers \"done <id>\"."},
		func(ctx context.Context, req *mcp.CallToolRequest, in args) (*mcp.CallToolResult, any, error) {
			if in.ID == "" || in.Steps < 0 || in.Steps > maxSteps || in.StepMS < 0 || in.StepMS > maxPause || in.FirstMS < 0 || in.FirstMS > maxPause {
				return nil, nil, fmt.Errorf("want id, 0 <= steps <= %d, 0 <= step_ms, first_ms <= %d", maxSteps, maxPause)
			}
			c.add(c.Started, in.ID)
			token := req.Params.GetProgressToken()
			if err := pause(ctx, in.FirstMS); err != nil {
				return nil, nil, fmt.Errorf("call %s before its first step: %w", in.ID, err)
			}
			for k := 1; k <= in.Steps; k++ {
				if token != nil {
					err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token,
						Progress: float64(k), Total: float64(in.Steps), Message: fmt.Sprintf("%s step %d", in.ID, k)})
					if err != nil {
						return nil, nil, fmt.Errorf("call %s, progress %d: %w", in.ID, k, err)
					}
				}
				if k < in.Steps {
					if err := pause(ctx, in.StepMS); err != nil {
						return nil, nil, fmt.Errorf("call %s after step %d: %w", in.ID, k, err)
					}
				}
			}
			c.add(c.Finished, in.ID)
			log.Debug("call finished", "id", in.ID, "steps", in.Steps)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done " + in.ID}}}, nil, nil
		})
	return srv
}

func main() {
	listen := flag.String("listen", "0.0.0.0:8080", "address of /mcp and /executions")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	c := &counts{Started: map[string]int{}, Finished: map[string]int{}}
	srv := newServer(c, log)
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	mux.Handle("GET /executions", c)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	hs := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	log.Info("slowtool listening", "addr", *listen)
	if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serving", "err", err)
		os.Exit(1)
	}
}
