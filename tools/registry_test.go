package tools_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/mcpstream/mcpstream/tools"
)

// fakeProvider serves named tools whose result text names the provider and
// the tool it was called with, so routing mistakes show up in assertions.
type fakeProvider struct {
	name      string
	namespace string

	mu      sync.Mutex
	names   []string
	listErr error
	callErr error
	nilRes  bool
	calls   []tools.Call
}

func (p *fakeProvider) Name() string { return p.name }

func (p *fakeProvider) ListTools(ctx context.Context) ([]tools.Tool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listErr != nil {
		return nil, p.listErr
	}
	out := make([]tools.Tool, 0, len(p.names))
	for _, n := range p.names {
		out = append(out, tools.Tool{Name: n, Description: "d", InputSchema: json.RawMessage(`{"type":"object"}`)})
	}
	return out, nil
}

func (p *fakeProvider) CallTool(ctx context.Context, call tools.Call, n tools.Notifier) (*tools.Result, error) {
	p.mu.Lock()
	p.calls = append(p.calls, call)
	callErr, nilRes := p.callErr, p.nilRes
	p.mu.Unlock()
	if callErr != nil {
		return nil, callErr
	}
	if nilRes {
		return nil, nil
	}
	// Exercise the notifier so a nil one would panic here.
	if err := n.Log(ctx, "info", p.name, call.Name); err != nil {
		return nil, err
	}
	txt, _ := json.Marshal(map[string]string{"type": "text", "text": p.name + "/" + call.Name})
	return &tools.Result{Content: []json.RawMessage{txt}}, nil
}

func (p *fakeProvider) setNames(names ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.names = names
}

func (p *fakeProvider) setListErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listErr = err
}

type namespacedProvider struct{ *fakeProvider }

func (p namespacedProvider) Namespace() string { return p.namespace }

func names(ts []tools.Tool) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

func resultText(t *testing.T, r *tools.Result) string {
	t.Helper()
	if r == nil || len(r.Content) != 1 {
		t.Fatalf("want one content block, got %+v", r)
	}
	var c struct{ Text string }
	if err := json.Unmarshal(r.Content[0], &c); err != nil {
		t.Fatalf("decode content: %v", err)
	}
	return c.Text
}

func TestNewRegistryRejectsBadProviders(t *testing.T) {
	cases := []struct {
		name      string
		providers []tools.Provider
		wantErr   string
	}{
		{"duplicate across providers", []tools.Provider{
			&fakeProvider{name: "a", names: []string{"x", "dup"}},
			&fakeProvider{name: "b", names: []string{"dup"}},
		}, `duplicate tool name "dup"`},
		{"duplicate within provider", []tools.Provider{
			&fakeProvider{name: "a", names: []string{"x", "x"}},
		}, `duplicate tool name "x"`},
		{"duplicate provider name", []tools.Provider{
			&fakeProvider{name: "a", names: []string{"x"}},
			&fakeProvider{name: "a", names: []string{"y"}},
		}, `duplicate provider name "a"`},
		{"nil provider", []tools.Provider{nil}, "provider 0 is nil"},
		{"empty provider name", []tools.Provider{&fakeProvider{}}, "empty name"},
		{"empty tool name", []tools.Provider{&fakeProvider{name: "a", names: []string{""}}}, "empty name"},
		{"list error", []tools.Provider{&fakeProvider{name: "a", listErr: errors.New("boom")}}, "boom"},
		{"namespace collision", []tools.Provider{
			&fakeProvider{name: "plain", names: []string{"ns.x"}},
			namespacedProvider{&fakeProvider{name: "up", namespace: "ns", names: []string{"x"}}},
		}, `duplicate tool name "ns.x"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tools.NewRegistry(tc.providers...)
			if err == nil {
				t.Fatalf("NewRegistry succeeded with %v, want error containing %q", r, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestListToolsIsSortedAndStable(t *testing.T) {
	r, err := tools.NewRegistry(
		&fakeProvider{name: "b", names: []string{"zeta", "alpha"}},
		&fakeProvider{name: "a", names: []string{"mu", "Beta"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Beta", "alpha", "mu", "zeta"} // byte order: upper case first
	for i := 0; i < 3; i++ {
		got, err := r.ListTools(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(names(got), want) {
			t.Fatalf("call %d: got %v, want %v", i, names(got), want)
		}
		// Callers own the returned slice; scribbling on it must not leak
		// into the next tools/list.
		got[0].Name = "mutated"
	}
}

func TestListToolsHonoursCancelledContext(t *testing.T) {
	r, err := tools.NewRegistry(&fakeProvider{name: "a", names: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.ListTools(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestCallToolRoutesByName(t *testing.T) {
	a := &fakeProvider{name: "a", names: []string{"one", "two"}}
	b := &fakeProvider{name: "b", names: []string{"three"}}
	r, err := tools.NewRegistry(a, b)
	if err != nil {
		t.Fatal(err)
	}
	for tool, want := range map[string]string{"one": "a/one", "two": "a/two", "three": "b/three"} {
		res, err := r.CallTool(context.Background(), tools.Call{Name: tool, EventID: "e1"}, nil)
		if err != nil {
			t.Fatalf("call %s: %v", tool, err)
		}
		if got := resultText(t, res); got != want {
			t.Errorf("call %s answered by %q, want %q", tool, got, want)
		}
	}
	if len(a.calls) != 2 || len(b.calls) != 1 {
		t.Fatalf("calls: a=%d b=%d, want 2 and 1", len(a.calls), len(b.calls))
	}
	if a.calls[0].EventID != "e1" {
		t.Errorf("call fields not passed through: %+v", a.calls[0])
	}

	p, tool, ok := r.Lookup("three")
	if !ok || p != b || tool.Name != "three" {
		t.Errorf("Lookup(three) = %v, %+v, %v", p, tool, ok)
	}
	if _, _, ok := r.Lookup("nope"); ok {
		t.Error("Lookup(nope) found a tool")
	}
}

func TestCallToolUnknownTool(t *testing.T) {
	r, err := tools.NewRegistry(&fakeProvider{name: "a", names: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.CallTool(context.Background(), tools.Call{Name: "missing"}, nil)
	if !errors.Is(err, tools.ErrUnknownTool) {
		t.Fatalf("got %v, want ErrUnknownTool", err)
	}
}

func TestCallToolKeepsProviderErrorsInspectable(t *testing.T) {
	argErr := &tools.ArgumentError{Msg: "bad"}
	rpcErr := tools.NewMissingCapabilityError("need sampling", map[string]any{"sampling": map[string]any{}})
	p := &fakeProvider{name: "a", names: []string{"x"}}
	r, err := tools.NewRegistry(p)
	if err != nil {
		t.Fatal(err)
	}

	p.callErr = fmt.Errorf("inner: %w", argErr)
	_, err = r.CallTool(context.Background(), tools.Call{Name: "x"}, nil)
	var gotArg *tools.ArgumentError
	if !errors.As(err, &gotArg) || gotArg != argErr {
		t.Fatalf("ArgumentError lost: %v", err)
	}
	if !strings.Contains(err.Error(), `"x"`) || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("error lacks tool/provider context: %v", err)
	}

	p.callErr = rpcErr
	_, err = r.CallTool(context.Background(), tools.Call{Name: "x"}, nil)
	var gotRPC *tools.RPCError
	if !errors.As(err, &gotRPC) || gotRPC.Code != tools.CodeMissingRequiredClientCapability {
		t.Fatalf("RPCError lost: %v", err)
	}

	p.callErr = nil
	p.nilRes = true
	if _, err := r.CallTool(context.Background(), tools.Call{Name: "x"}, nil); err == nil {
		t.Fatal("nil result with nil error was accepted")
	}
}

func TestNamespacedProviderPrefixAndStrip(t *testing.T) {
	up := &fakeProvider{name: "github", namespace: "gh", names: []string{"create_issue"}}
	r, err := tools.NewRegistry(namespacedProvider{up}, &fakeProvider{name: "local", names: []string{"create_issue"}})
	if err != nil {
		t.Fatalf("same own name in two providers must not collide once namespaced: %v", err)
	}
	list, _ := r.ListTools(context.Background())
	if want := []string{"create_issue", "gh.create_issue"}; !reflect.DeepEqual(names(list), want) {
		t.Fatalf("got %v, want %v", names(list), want)
	}
	res, err := r.CallTool(context.Background(), tools.Call{Name: "gh.create_issue"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resultText(t, res); got != "github/create_issue" {
		t.Fatalf("provider saw %q, want the name without namespace", got)
	}
	if _, tool, ok := r.Lookup("gh.create_issue"); !ok || tool.Name != "gh.create_issue" {
		t.Fatalf("Lookup returned %+v, %v", tool, ok)
	}
}

func TestRefresh(t *testing.T) {
	p := &fakeProvider{name: "a", names: []string{"x"}}
	other := &fakeProvider{name: "b", names: []string{"y"}}
	r, err := tools.NewRegistry(p, other)
	if err != nil {
		t.Fatal(err)
	}

	// The cache is what clients see until Refresh, even if the provider
	// changed underneath.
	p.setNames("x", "z")
	list, _ := r.ListTools(context.Background())
	if want := []string{"x", "y"}; !reflect.DeepEqual(names(list), want) {
		t.Fatalf("before refresh got %v, want %v", names(list), want)
	}
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	list, _ = r.ListTools(context.Background())
	if want := []string{"x", "y", "z"}; !reflect.DeepEqual(names(list), want) {
		t.Fatalf("after refresh got %v, want %v", names(list), want)
	}

	// A failed refresh keeps the last good set.
	p.setListErr(errors.New("upstream down"))
	if err := r.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "upstream down") {
		t.Fatalf("refresh error = %v", err)
	}
	p.setListErr(nil)
	p.setNames("y") // collides with provider b
	if err := r.Refresh(context.Background()); err == nil {
		t.Fatal("refresh accepted a duplicate name")
	}
	list, _ = r.ListTools(context.Background())
	if want := []string{"x", "y", "z"}; !reflect.DeepEqual(names(list), want) {
		t.Fatalf("after failed refreshes got %v, want %v", names(list), want)
	}
}

func TestConcurrentCallsAndRefresh(t *testing.T) {
	p := &fakeProvider{name: "a", names: []string{"x", "y"}}
	r, err := tools.NewRegistry(p)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if i%4 == 0 {
					if err := r.Refresh(context.Background()); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				if _, err := r.CallTool(context.Background(), tools.Call{Name: "x"}, nil); err != nil {
					t.Error(err)
					return
				}
				if _, err := r.ListTools(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
}

func TestHasClientCapability(t *testing.T) {
	ctx := context.Background()
	if tools.HasClientCapability(ctx, "sampling") {
		t.Error("no capabilities attached, yet sampling reported")
	}
	cases := []struct {
		caps string
		want bool
	}{
		{`{"sampling":{}}`, true},
		{`{"sampling":{"context":{}},"roots":{"listChanged":true}}`, true},
		{`{}`, false},
		{`{"elicitation":{}}`, false},
		{`{"sampling":null}`, false},
		{`not json`, false},
		{`["sampling"]`, false},
	}
	for _, tc := range cases {
		c := tools.WithClientCapabilities(ctx, json.RawMessage(tc.caps))
		if got := tools.HasClientCapability(c, "sampling"); got != tc.want {
			t.Errorf("caps %s: got %v, want %v", tc.caps, got, tc.want)
		}
	}
	raw, ok := tools.ClientCapabilities(tools.WithClientCapabilities(ctx, json.RawMessage(`{}`)))
	if !ok || string(raw) != `{}` {
		t.Errorf("ClientCapabilities = %s, %v", raw, ok)
	}
}

func TestMissingCapabilityErrorShape(t *testing.T) {
	e := tools.NewMissingCapabilityError("need sampling", map[string]any{"sampling": map[string]any{}})
	if e.Code != -32021 {
		t.Fatalf("code %d", e.Code)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"code":-32021,"message":"need sampling","data":{"requiredCapabilities":{"sampling":{}}}}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
}

func TestZeroRegistryIsEmpty(t *testing.T) {
	var r tools.Registry
	list, err := r.ListTools(context.Background())
	if err != nil || len(list) != 0 {
		t.Fatalf("ListTools = %v, %v", list, err)
	}
	if _, err := r.CallTool(context.Background(), tools.Call{Name: "x"}, nil); !errors.Is(err, tools.ErrUnknownTool) {
		t.Fatalf("CallTool error = %v", err)
	}
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh of an empty registry: %v", err)
	}
}
