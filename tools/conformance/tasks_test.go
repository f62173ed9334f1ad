package conformance

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/tools"
)

func TestTaskFixtures(t *testing.T) {
	p := New()
	list, _ := p.ListTools(context.Background())
	support := map[string]string{}
	for _, tl := range list {
		support[tl.Name] = tl.TaskSupport()
	}
	for name, want := range map[string]string{ToolGreet: tools.TaskForbidden, ToolSlowCompute: tools.TaskOptional,
		ToolFailingJob: tools.TaskRequired, ToolProtocolErrorJob: tools.TaskOptional, ToolSimpleText: tools.TaskForbidden} {
		if support[name] != want {
			t.Errorf("%s taskSupport %q, want %q", name, support[name], want)
		}
	}
	res, err := p.CallTool(context.Background(), tools.Call{Name: ToolGreet, Arguments: []byte(`{"name":"Ada"}`)}, nil)
	if err != nil || !strings.Contains(string(res.Content[0]), "Hello, Ada!") {
		t.Fatalf("greet: %v %v", res, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.CallTool(ctx, tools.Call{Name: ToolSlowCompute, Arguments: []byte(`{"seconds":60}`)}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow_compute did not stop with its context: %v", err)
	}
	var rpcErr *tools.RPCError
	if _, err := p.CallTool(context.Background(), tools.Call{Name: ToolProtocolErrorJob}, nil); !errors.As(err, &rpcErr) || rpcErr.Code != -32603 {
		t.Fatalf("protocol_error_job: %v", err)
	}
	var argErr *tools.ArgumentError
	if _, err := p.CallTool(context.Background(), tools.Call{Name: ToolSlowCompute, Arguments: []byte(`{"seconds":-1}`)}, nil); !errors.As(err, &argErr) {
		t.Fatalf("slow_compute accepted negative seconds: %v", err)
	}
}
