package tools_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mcpstream/mcpstream/tools"
)

// fakeCatalog serves resources, templates and prompts whose contents name
// the provider, so routing mistakes show up in assertions. It implements
// both catalog interfaces; completions come from fakeCompleter.
type fakeCatalog struct {
	name string

	mu        sync.Mutex
	uris      []string
	templates []string
	prompts   []tools.Prompt
	listErr   error
	// notFound lists URIs the provider answers ErrResourceNotFound for even
	// though they match one of its templates.
	notFound map[string]bool
	empty    bool // answer reads with no contents
	getErr   error
	nilRes   bool
	reads    []string
	gets     []map[string]string
}

func (f *fakeCatalog) Name() string { return f.name }

func (f *fakeCatalog) ListResources(context.Context) ([]tools.Resource, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listErr != nil {
		return nil, f.listErr
	}
	var out []tools.Resource
	for _, u := range f.uris {
		out = append(out, tools.Resource{URI: u, Name: "n-" + u})
	}
	return out, nil
}

func (f *fakeCatalog) ListResourceTemplates(context.Context) ([]tools.ResourceTemplate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []tools.ResourceTemplate
	for _, u := range f.templates {
		out = append(out, tools.ResourceTemplate{URITemplate: u, Name: "t-" + u})
	}
	return out, nil
}

func (f *fakeCatalog) ReadResource(_ context.Context, uri string) (*tools.ReadResourceResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, uri)
	if f.notFound[uri] {
		return nil, fmt.Errorf("fake: %w", tools.ErrResourceNotFound)
	}
	if f.empty {
		return &tools.ReadResourceResult{}, nil
	}
	return &tools.ReadResourceResult{Contents: []tools.ResourceContents{{URI: uri, Text: f.name}}}, nil
}

func (f *fakeCatalog) ListPrompts(context.Context) ([]tools.Prompt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tools.Prompt(nil), f.prompts...), nil
}

func (f *fakeCatalog) GetPrompt(_ context.Context, name string, args map[string]string) (*tools.GetPromptResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets = append(f.gets, args)
	if f.getErr != nil {
		return nil, f.getErr
	}
	if f.nilRes {
		return nil, nil
	}
	txt, _ := json.Marshal(map[string]string{"type": "text", "text": f.name + "/" + name})
	return &tools.GetPromptResult{Messages: []tools.PromptMessage{{Role: "user", Content: txt}}}, nil
}

func (f *fakeCatalog) set(fn func(*fakeCatalog)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// fakeCompleter is a fakeCatalog that completes with canned values.
type fakeCompleter struct {
	*fakeCatalog
	values []string
	err    error
	calls  []tools.CompletionRef
}

func (c *fakeCompleter) Complete(_ context.Context, ref tools.CompletionRef, arg tools.CompletionArgument, cc tools.CompletionContext) (*tools.Completion, error) {
	c.calls = append(c.calls, ref)
	if c.err != nil {
		return nil, c.err
	}
	if c.values == nil {
		return &tools.Completion{}, nil
	}
	return &tools.Completion{Values: append([]string(nil), c.values...)}, nil
}

// promptOnly serves prompts and nothing else.
type promptOnly struct{ f *fakeCatalog }

func (p promptOnly) Name() string { return p.f.Name() }
func (p promptOnly) ListPrompts(ctx context.Context) ([]tools.Prompt, error) {
	return p.f.ListPrompts(ctx)
}
func (p promptOnly) GetPrompt(ctx context.Context, n string, a map[string]string) (*tools.GetPromptResult, error) {
	return p.f.GetPrompt(ctx, n, a)
}

type nameOnly string

func (n nameOnly) Name() string { return string(n) }

func prompt(name string, required ...string) tools.Prompt {
	p := tools.Prompt{Name: name, Description: "d"}
	for _, r := range required {
		p.Arguments = append(p.Arguments, tools.PromptArgument{Name: r, Required: true})
	}
	return p
}

func TestNewCatalogRegistryRejectsBadProviders(t *testing.T) {
	cases := []struct {
		name      string
		providers []tools.CatalogProvider
		wantErr   string
	}{
		{"nil provider", []tools.CatalogProvider{nil}, "provider 0 is nil"},
		{"empty name", []tools.CatalogProvider{&fakeCatalog{}}, "empty name"},
		{"serves nothing", []tools.CatalogProvider{nameOnly("x")}, "serves neither"},
		{"duplicate provider name", []tools.CatalogProvider{&fakeCatalog{name: "a"}, &fakeCatalog{name: "a"}}, `duplicate provider name "a"`},
		{"duplicate resource", []tools.CatalogProvider{
			&fakeCatalog{name: "a", uris: []string{"x://1"}}, &fakeCatalog{name: "b", uris: []string{"x://1"}},
		}, `duplicate resource "x://1" (providers "a" and "b")`},
		{"duplicate template", []tools.CatalogProvider{
			&fakeCatalog{name: "a", templates: []string{"x://{id}"}}, &fakeCatalog{name: "b", templates: []string{"x://{id}"}},
		}, `duplicate resource template "x://{id}"`},
		{"duplicate prompt", []tools.CatalogProvider{
			&fakeCatalog{name: "a", prompts: []tools.Prompt{prompt("p")}}, promptOnly{&fakeCatalog{name: "b", prompts: []tools.Prompt{prompt("p")}}},
		}, `duplicate prompt "p"`},
		{"empty prompt name", []tools.CatalogProvider{&fakeCatalog{name: "a", prompts: []tools.Prompt{prompt("")}}}, "empty name"},
		{"empty resource uri", []tools.CatalogProvider{&fakeCatalog{name: "a", uris: []string{""}}}, "without uri or name"},
		{"invalid template", []tools.CatalogProvider{&fakeCatalog{name: "a", templates: []string{"x://{unclosed"}}}, `resource template "x://{unclosed"`},
		{"list error", []tools.CatalogProvider{&fakeCatalog{name: "a", listErr: errors.New("boom")}}, "boom"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tools.NewCatalogRegistry(context.Background(), tc.providers...)
			if err == nil {
				t.Fatalf("NewCatalogRegistry succeeded with %v, want error containing %q", r, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestCatalogListsAreSortedCopies(t *testing.T) {
	ctx := context.Background()
	r, err := tools.NewCatalogRegistry(ctx,
		&fakeCatalog{name: "b", uris: []string{"z://1", "a://2"}, templates: []string{"t://{b}"}, prompts: []tools.Prompt{prompt("zeta"), prompt("Alpha")}},
		&fakeCatalog{name: "a", uris: []string{"m://3"}, templates: []string{"s://{a}"}, prompts: []tools.Prompt{prompt("mu")}},
	)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		res, err := r.ListResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var uris []string
		for _, x := range res {
			uris = append(uris, x.URI)
		}
		if want := []string{"a://2", "m://3", "z://1"}; !reflect.DeepEqual(uris, want) {
			t.Fatalf("resources %v, want %v", uris, want)
		}
		tmpls, _ := r.ListResourceTemplates(ctx)
		if len(tmpls) != 2 || tmpls[0].URITemplate != "s://{a}" || tmpls[1].URITemplate != "t://{b}" {
			t.Fatalf("templates %+v", tmpls)
		}
		ps, _ := r.ListPrompts(ctx)
		var names []string
		for _, p := range ps {
			names = append(names, p.Name)
		}
		if want := []string{"Alpha", "mu", "zeta"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("prompts %v, want %v", names, want)
		}
		// Scribbling on a returned list must not reach the next caller.
		res[0].URI, tmpls[0].URITemplate, ps[0].Name = "x", "x", "x"
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.ListResources(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("ListResources on a cancelled context: %v", err)
	}
	if _, err := r.ListPrompts(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("ListPrompts on a cancelled context: %v", err)
	}
	if _, err := r.ListResourceTemplates(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("ListResourceTemplates on a cancelled context: %v", err)
	}
	if got := r.String(); !strings.Contains(got, "resources: 3") || !strings.Contains(got, "prompts: 3") {
		t.Errorf("String() = %q", got)
	}
}

func readText(t *testing.T, res *tools.ReadResourceResult) string {
	t.Helper()
	if res == nil || len(res.Contents) != 1 {
		t.Fatalf("want one contents item, got %+v", res)
	}
	return res.Contents[0].Text
}

func TestReadResourceRouting(t *testing.T) {
	ctx := context.Background()
	exact := &fakeCatalog{name: "exact", uris: []string{"file:///a/b"}}
	// Both templates match "item://7/x". Templates are tried in byte order
	// ('+' sorts before 'i'): "first" says not found for item://7/x, so
	// "second" answers it.
	first := &fakeCatalog{name: "first", templates: []string{"item://{+rest}"}, notFound: map[string]bool{"item://7/x": true}}
	second := &fakeCatalog{name: "second", templates: []string{"item://{id}/x"}}
	empty := &fakeCatalog{name: "empty", uris: []string{"empty://1"}, empty: true}
	r, err := tools.NewCatalogRegistry(ctx, exact, first, second, empty)
	if err != nil {
		t.Fatal(err)
	}
	for uri, want := range map[string]string{
		"file:///a/b": "exact",
		"item://3/x":  "first",
		"item://7/x":  "second",
		"item://a/b":  "first", // {id}/x does not match; {+rest} takes anything
	} {
		res, err := r.ReadResource(ctx, uri)
		if err != nil {
			t.Fatalf("read %s: %v", uri, err)
		}
		if got := readText(t, res); got != want {
			t.Errorf("read %s answered by %q, want %q", uri, got, want)
		}
	}
	for _, uri := range []string{"file:///a/c", "other://1", "empty://1", ""} {
		if _, err := r.ReadResource(ctx, uri); !errors.Is(err, tools.ErrResourceNotFound) {
			t.Errorf("read %q: %v, want ErrResourceNotFound", uri, err)
		}
	}
	if want := []string{"item://3/x", "item://7/x", "item://a/b"}; !reflect.DeepEqual(sortedCopy(first.reads), want) {
		t.Errorf("first provider read %v", first.reads)
	}
}

func TestGetPrompt(t *testing.T) {
	ctx := context.Background()
	p := &fakeCatalog{name: "p", prompts: []tools.Prompt{
		prompt("two", "a", "b"),
		{Name: "opt", Arguments: []tools.PromptArgument{{Name: "o"}}},
	}}
	r, err := tools.NewCatalogRegistry(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.GetPrompt(ctx, "two", map[string]string{"a": "1", "b": ""})
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Text string }
	if len(res.Messages) != 1 || json.Unmarshal(res.Messages[0].Content, &c) != nil || c.Text != "p/two" {
		t.Fatalf("result %+v", res)
	}
	if got := p.gets[0]; !reflect.DeepEqual(got, map[string]string{"a": "1", "b": ""}) {
		t.Errorf("provider saw args %v", got)
	}
	if _, err := r.GetPrompt(ctx, "opt", nil); err != nil {
		t.Errorf("optional argument omitted: %v", err)
	}

	_, err = r.GetPrompt(ctx, "two", map[string]string{"x": "1"})
	var argErr *tools.ArgumentError
	if !errors.As(err, &argErr) || !strings.Contains(argErr.Msg, "a, b") {
		t.Fatalf("missing arguments: %v, want an ArgumentError naming a, b", err)
	}
	if len(p.gets) != 2 {
		t.Errorf("provider called %d times; a call with missing arguments must not reach it", len(p.gets))
	}
	if _, err := r.GetPrompt(ctx, "nope", nil); !errors.Is(err, tools.ErrUnknownPrompt) {
		t.Errorf("unknown prompt: %v", err)
	}

	p.set(func(f *fakeCatalog) { f.getErr = &tools.RPCError{Code: -32000, Message: "upstream"} })
	var rpc *tools.RPCError
	if _, err := r.GetPrompt(ctx, "opt", nil); !errors.As(err, &rpc) || !strings.Contains(err.Error(), `"p"`) {
		t.Errorf("provider error lost or without provider name: %v", err)
	}
	p.set(func(f *fakeCatalog) { f.getErr, f.nilRes = nil, true })
	if _, err := r.GetPrompt(ctx, "opt", nil); err == nil {
		t.Error("nil result with nil error was accepted")
	}
}

func TestComplete(t *testing.T) {
	ctx := context.Background()
	many := make([]string, 150)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	comp := &fakeCompleter{fakeCatalog: &fakeCatalog{name: "comp", prompts: []tools.Prompt{prompt("cp")},
		templates: []string{"c://{id}"}, uris: []string{"c://static"}}, values: []string{"v1", "v2"}}
	plain := &fakeCatalog{name: "plain", prompts: []tools.Prompt{prompt("pp")}, templates: []string{"p://{id}"}}
	r, err := tools.NewCatalogRegistry(ctx, comp, plain)
	if err != nil {
		t.Fatal(err)
	}
	if !r.ServesCompletions() || !r.ServesPrompts() || !r.ServesResources() {
		t.Fatal("capability flags off")
	}
	arg := tools.CompletionArgument{Name: "a", Value: "v"}
	for _, ref := range []tools.CompletionRef{
		{Type: tools.RefPrompt, Name: "cp"},
		{Type: tools.RefResource, URI: "c://{id}"},
		{Type: tools.RefResource, URI: "c://static"},
	} {
		c, err := r.Complete(ctx, ref, arg, tools.CompletionContext{})
		if err != nil {
			t.Fatalf("%+v: %v", ref, err)
		}
		if !reflect.DeepEqual(c.Values, []string{"v1", "v2"}) {
			t.Errorf("%+v: values %v", ref, c.Values)
		}
	}
	if len(comp.calls) != 3 {
		t.Errorf("completer called %d times, want 3", len(comp.calls))
	}
	for _, ref := range []tools.CompletionRef{{Type: tools.RefPrompt, Name: "pp"}, {Type: tools.RefResource, URI: "p://{id}"}} {
		c, err := r.Complete(ctx, ref, arg, tools.CompletionContext{})
		if err != nil || c.Values == nil || len(c.Values) != 0 {
			t.Errorf("%+v of a provider without Completer: %+v, %v; want empty non-nil values", ref, c, err)
		}
	}

	comp.values = many
	c, err := r.Complete(ctx, tools.CompletionRef{Type: tools.RefPrompt, Name: "cp"}, arg, tools.CompletionContext{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Values) != tools.MaxCompletionValues || !c.HasMore || c.Total != 150 {
		t.Errorf("150 values trimmed to %d, hasMore %v, total %d", len(c.Values), c.HasMore, c.Total)
	}
	comp.values = nil
	if c, err := r.Complete(ctx, tools.CompletionRef{Type: tools.RefPrompt, Name: "cp"}, arg, tools.CompletionContext{}); err != nil || c.Values == nil {
		t.Errorf("nil values must become []: %+v, %v", c, err)
	}

	var argErr *tools.ArgumentError
	if _, err := r.Complete(ctx, tools.CompletionRef{Type: tools.RefPrompt, Name: "nope"}, arg, tools.CompletionContext{}); !errors.Is(err, tools.ErrUnknownPrompt) {
		t.Errorf("unknown prompt ref: %v", err)
	}
	if _, err := r.Complete(ctx, tools.CompletionRef{Type: tools.RefResource, URI: "n://{x}"}, arg, tools.CompletionContext{}); !errors.Is(err, tools.ErrResourceNotFound) {
		t.Errorf("unknown resource ref: %v", err)
	}
	if _, err := r.Complete(ctx, tools.CompletionRef{Type: "ref/tool", Name: "cp"}, arg, tools.CompletionContext{}); !errors.As(err, &argErr) {
		t.Errorf("unknown ref type: %v", err)
	}
	if _, err := r.Complete(ctx, tools.CompletionRef{Type: tools.RefPrompt, Name: "cp"}, tools.CompletionArgument{}, tools.CompletionContext{}); !errors.As(err, &argErr) {
		t.Errorf("empty argument name: %v", err)
	}
	comp.err = errors.New("boom")
	if _, err := r.Complete(ctx, tools.CompletionRef{Type: tools.RefPrompt, Name: "cp"}, arg, tools.CompletionContext{}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("completer error lost: %v", err)
	}
}

func TestCatalogCapabilitiesFollowProviders(t *testing.T) {
	ctx := context.Background()
	var nilReg *tools.CatalogRegistry
	if nilReg.ServesResources() || nilReg.ServesPrompts() || nilReg.ServesCompletions() {
		t.Error("a nil registry serves something")
	}
	if _, err := nilReg.ReadResource(ctx, "x://1"); !errors.Is(err, tools.ErrResourceNotFound) {
		t.Errorf("nil registry read: %v", err)
	}
	empty, err := tools.NewCatalogRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if empty.ServesResources() || empty.ServesPrompts() || empty.ServesCompletions() {
		t.Error("an empty registry serves something")
	}
	onlyPrompts, err := tools.NewCatalogRegistry(ctx, promptOnly{&fakeCatalog{name: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	if onlyPrompts.ServesResources() || !onlyPrompts.ServesPrompts() || onlyPrompts.ServesCompletions() {
		t.Error("prompt-only registry flags wrong")
	}
}

func TestCatalogRefresh(t *testing.T) {
	ctx := context.Background()
	p := &fakeCatalog{name: "a", uris: []string{"x://1"}, prompts: []tools.Prompt{prompt("p1")}}
	r, err := tools.NewCatalogRegistry(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	p.set(func(f *fakeCatalog) { f.uris = []string{"x://1", "x://2"}; f.prompts = append(f.prompts, prompt("p2")) })
	if _, err := r.ReadResource(ctx, "x://2"); !errors.Is(err, tools.ErrResourceNotFound) {
		t.Fatalf("unlisted resource readable before Refresh: %v", err)
	}
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadResource(ctx, "x://2"); err != nil {
		t.Fatalf("after refresh: %v", err)
	}
	if _, err := r.GetPrompt(ctx, "p2", nil); err != nil {
		t.Fatalf("after refresh: %v", err)
	}
	p.set(func(f *fakeCatalog) { f.listErr = errors.New("down") })
	if err := r.Refresh(ctx); err == nil {
		t.Fatal("refresh with a failing provider succeeded")
	}
	if list, _ := r.ListResources(ctx); len(list) != 2 {
		t.Fatalf("failed refresh replaced the catalog: %v", list)
	}
}

func TestCatalogConcurrentReadsAndRefresh(t *testing.T) {
	ctx := context.Background()
	p := &fakeCatalog{name: "a", uris: []string{"x://1"}, templates: []string{"y://{id}"}, prompts: []tools.Prompt{prompt("p")}}
	r, err := tools.NewCatalogRegistry(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				var err error
				switch i % 4 {
				case 0:
					err = r.Refresh(ctx)
				case 1:
					_, err = r.ReadResource(ctx, fmt.Sprintf("y://%d", j))
				case 2:
					_, err = r.GetPrompt(ctx, "p", nil)
				default:
					_, err = r.ListResources(ctx)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
}

func TestResourceContentsJSON(t *testing.T) {
	cases := []struct {
		name string
		c    tools.ResourceContents
		want string
	}{
		{"text", tools.ResourceContents{URI: "a://1", MIMEType: "text/plain", Text: "hi"}, `{"uri":"a://1","mimeType":"text/plain","text":"hi"}`},
		{"empty text stays", tools.ResourceContents{URI: "a://1"}, `{"uri":"a://1","text":""}`},
		{"blob", tools.ResourceContents{URI: "b://1", MIMEType: "image/png", Blob: []byte{0, 1, 2, 255}}, `{"uri":"b://1","mimeType":"image/png","blob":"AAEC/w=="}`},
		{"empty blob is still a blob", tools.ResourceContents{URI: "b://1", Blob: []byte{}}, `{"uri":"b://1","blob":""}`},
		{"meta", tools.ResourceContents{URI: "a://1", Text: "x", Meta: json.RawMessage(`{"k":1}`)}, `{"uri":"a://1","text":"x","_meta":{"k":1}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Fatalf("got %s, want %s", b, tc.want)
			}
			var back tools.ResourceContents
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if back.URI != tc.c.URI || back.Text != tc.c.Text || string(back.Blob) != string(tc.c.Blob) || (back.Blob == nil) != (tc.c.Blob == nil) {
				t.Fatalf("round trip %+v, want %+v", back, tc.c)
			}
		})
	}
	var c tools.ResourceContents
	if err := json.Unmarshal([]byte(`{"uri":"b://1","blob":"not base64!"}`), &c); err == nil {
		t.Error("invalid base64 blob accepted")
	}
}

func TestMatchURITemplate(t *testing.T) {
	cases := []struct {
		tmpl, uri string
		want      map[string]string
	}{
		{"test://template/{id}/data", "test://template/123/data", map[string]string{"id": "123"}},
		{"test://template/{id}/data", "test://template/a%20b/data", map[string]string{"id": "a b"}},
		{"test://template/{id}/data", "test://template/1/2/data", nil},
		{"test://template/{id}/data", "test://other/1/data", nil},
		{"file:///{+path}", "file:///a/b/c.txt", map[string]string{"path": "a/b/c.txt"}},
		{"x://{unclosed", "x://1", nil},
	}
	for _, tc := range cases {
		got, ok := tools.MatchURITemplate(tc.tmpl, tc.uri)
		if ok != (tc.want != nil) || (ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("MatchURITemplate(%q, %q) = %v, %v; want %v", tc.tmpl, tc.uri, got, ok, tc.want)
		}
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
