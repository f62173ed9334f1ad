package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// SimpleText is what the reference server's test_simple_text tool returns,
// matching the MCP conformance suite's everything-server.
const SimpleText = "This is a simple text response for testing."

// shutdownGrace bounds a graceful stop. Sessions whose clients never closed
// them keep a standalone SSE GET open, which would otherwise stall Shutdown.
const shutdownGrace = time.Second

// StartReference serves the official go-sdk MCP server in-process, with the
// conformance suite's test_simple_text tool, over Streamable HTTP with the
// handler's default options (stateful sessions, SSE responses). It is the
// baseline mcpstream is measured against, so it deliberately adds nothing of
// its own.
//
// addr is a listen address such as "127.0.0.1:0" (an empty addr means that);
// the returned url is the MCP endpoint on the port actually bound. stop shuts
// the server down and waits for it; it is safe to call more than once and is
// also called when ctx is done.
func StartReference(ctx context.Context, addr string) (url string, stop func(), err error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("bench: listening for reference server on %s: %w", addr, err)
	}

	server := mcp.NewServer(&mcp.Implementation{Name: "go-sdk-reference", Version: "1"}, nil)
	// Registered like the conformance everything-server does, so the
	// reference pays the same typed-handler costs as that well-known server.
	mcp.AddTool(server, &mcp.Tool{
		Name:        DefaultTool,
		Description: "Tests simple text content response",
	}, func(context.Context, *mcp.CallToolRequest, any) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: SimpleText}}}, nil, nil
	})
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)

	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		// Serve always returns ErrServerClosed after stop; any other error
		// means the listener broke, and the clients will see it as failures.
		_ = srv.Serve(ln)
	}()

	var once sync.Once
	stop = func() {
		once.Do(func() {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			defer cancel()
			if err := srv.Shutdown(sctx); errors.Is(err, context.DeadlineExceeded) {
				_ = srv.Close()
			}
			<-served
		})
	}
	context.AfterFunc(ctx, stop)
	return "http://" + ln.Addr().String() + "/mcp", stop, nil
}
