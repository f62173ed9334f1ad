package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestFederatedUpstream: an upstream MCP server no one here wrote (the
// official server-everything, over stdio) configured in an upstreams file
// appears through mcpstream, namespaced, and its tools run through the log
// and the executors like built-in ones, progress included.
func TestFederatedUpstream(t *testing.T) {
	root := conformanceModuleRoot(t)
	out, err := exec.Command(filepath.Join(root, "ops/upstreams/install.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("installing server-everything (needs the npm registry the first time): %v\n%s", err, out)
	}
	var everything string
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "EVERYTHING="); ok {
			everything = v
		}
	}
	cfgFile := filepath.Join(t.TempDir(), "upstreams.json")
	conf, _ := json.Marshal(map[string]any{"upstreams": []any{map[string]any{
		"name": "everything", "stdio": map[string]any{"command": "node", "args": []string{everything}},
		"pool": map[string]any{"size": 4},
	}}})
	if err := os.WriteFile(cfgFile, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, "")
	cfg := roleConfig(b, "p1")
	cfg.Processor, cfg.Executor, cfg.Gateway = true, true, true
	cfg.UpstreamsFile = cfgFile
	r := startRole(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var progress []float64
	c := mcp.NewClient(&mcp.Implementation{Name: "fed", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			progress = append(progress, req.Params.Progress)
		}})
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: r.ready.MCPURL, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tl := range lt.Tools {
		found = found || tl.Name == "everything.echo"
	}
	if !found {
		t.Fatalf("tools/list lacks everything.echo: %d tools", len(lt.Tools))
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "everything.echo", Arguments: map[string]any{"message": "through the log"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, res); !strings.Contains(got, "through the log") {
		t.Fatalf("everything.echo = %q", got)
	}
	params := &mcp.CallToolParams{Name: "everything.trigger-long-running-operation", Arguments: map[string]any{"duration": 1, "steps": 4}}
	params.SetProgressToken("fed-1")
	if _, err := cs.CallTool(ctx, params); err != nil {
		t.Fatalf("long-running operation: %v", err)
	}
	if len(progress) != 4 {
		t.Fatalf("progress from the upstream = %v, want 4 notifications", progress)
	}
}
