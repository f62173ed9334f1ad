package conformance

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image/png"
	"reflect"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/tools"
)

// event is one notification a tool sent, in order.
type event struct {
	kind     string // "progress" or "log"
	progress float64
	total    float64
	message  string
	level    string
	logger   string
	data     any
	at       time.Time
}

// recorder is a Notifier that records what a tool sends. onEvent, when set,
// runs after each recorded event (used to cancel mid-call).
type recorder struct {
	mu      sync.Mutex
	events  []event
	err     error
	onEvent func(event)
}

func (r *recorder) add(e event) error {
	e.at = time.Now()
	r.mu.Lock()
	r.events = append(r.events, e)
	hook, err := r.onEvent, r.err
	r.mu.Unlock()
	if hook != nil {
		hook(e)
	}
	return err
}

func (r *recorder) Progress(_ context.Context, progress, total float64, message string) error {
	return r.add(event{kind: "progress", progress: progress, total: total, message: message})
}

func (r *recorder) Log(_ context.Context, level, logger string, data any) error {
	return r.add(event{kind: "log", level: level, logger: logger, data: data})
}

func (r *recorder) snapshot() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

// block is a decoded content block with every field the suite looks at.
type block struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Data     string `json:"data"`
	MIMEType string `json:"mimeType"`
	Resource *struct {
		URI      string `json:"uri"`
		MIMEType string `json:"mimeType"`
		Text     string `json:"text"`
		Blob     string `json:"blob"`
	} `json:"resource"`
}

func decode(t *testing.T, res *tools.Result) []block {
	t.Helper()
	if res == nil {
		t.Fatal("nil result")
	}
	out := make([]block, len(res.Content))
	for i, raw := range res.Content {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			t.Fatalf("content %d is not valid JSON: %v: %s", i, err, raw)
		}
	}
	return out
}

func call(t *testing.T, p *Provider, name string, n tools.Notifier) *tools.Result {
	t.Helper()
	res, err := p.CallTool(context.Background(), tools.Call{Name: name}, n)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

var wantTools = []string{
	ToolAudioContent, ToolEmbeddedResource, ToolErrorHandling, ToolImageContent,
	ToolLoggingTool, ToolMissingCapability, ToolMultipleContentTypes, ToolSimpleText,
	ToolStreamingElicitation, ToolTriggerPromptChange, ToolTriggerToolChange,
	ToolWithLogging, ToolWithProgress,
	ToolGreet, ToolSlowCompute, ToolFailingJob, ToolProtocolErrorJob, ToolConfirmDelete, ToolMultiInput, ToolWithTask, ToolCustomHeader, ToolReconnection,
	// clientreq.go
	ToolSampling, ToolElicitation, ToolElicitationDefaults, ToolElicitationEnums, ToolJSONSchema202012,
	ToolIRElicitation, ToolIRSampling, ToolIRListRoots, ToolIRRequestState, ToolIRMultipleInputs,
	ToolIRMultiRound, ToolIRTamperedState, ToolIRCapabilities,
}

func TestListTools(t *testing.T) {
	p := New()
	list, err := p.ListTools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(list))
	for i, tool := range list {
		got[i] = tool.Name
	}
	want := append([]string(nil), wantTools...)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("tools = %v\nwant    %v", got, want)
	}
	// What the tools-list scenario and the 2026-07-28 schema demand of
	// every tool: a name in the recommended alphabet, a description, and an
	// object input schema.
	nameRE := regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	for _, tool := range list {
		if !nameRE.MatchString(tool.Name) {
			t.Errorf("%s: name outside the spec alphabet", tool.Name)
		}
		if tool.Description == "" {
			t.Errorf("%s: missing description", tool.Name)
		}
		var schema struct{ Type string }
		if err := json.Unmarshal(tool.InputSchema, &schema); err != nil || schema.Type != "object" {
			t.Errorf("%s: inputSchema %s is not an object schema (%v)", tool.Name, tool.InputSchema, err)
		}
	}
}

func TestSimpleText(t *testing.T) {
	got := decode(t, call(t, New(), ToolSimpleText, &recorder{}))
	if len(got) != 1 || got[0].Type != "text" || got[0].Text != "This is a simple text response for testing." {
		t.Fatalf("got %+v", got)
	}
}

func checkPNG(t *testing.T, b block) {
	t.Helper()
	if b.Type != "image" || b.MIMEType != "image/png" {
		t.Fatalf("got %+v, want an image/png block", b)
	}
	raw, err := base64.StdEncoding.DecodeString(b.Data)
	if err != nil {
		t.Fatalf("image data is not base64: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("image data is not a PNG: %v", err)
	}
	if s := img.Bounds().Size(); s.X != 1 || s.Y != 1 {
		t.Errorf("image is %v, want 1x1", s)
	}
}

func TestImageContent(t *testing.T) {
	got := decode(t, call(t, New(), ToolImageContent, &recorder{}))
	if len(got) != 1 {
		t.Fatalf("got %d blocks, want 1", len(got))
	}
	checkPNG(t, got[0])
}

func TestAudioContent(t *testing.T) {
	got := decode(t, call(t, New(), ToolAudioContent, &recorder{}))
	if len(got) != 1 || got[0].Type != "audio" || got[0].MIMEType != "audio/wav" {
		t.Fatalf("got %+v, want one audio/wav block", got)
	}
	raw, err := base64.StdEncoding.DecodeString(got[0].Data)
	if err != nil {
		t.Fatalf("audio data is not base64: %v", err)
	}
	if len(raw) < 44 || string(raw[0:4]) != "RIFF" || string(raw[8:12]) != "WAVE" {
		t.Fatalf("audio data is not a WAV file: % x", raw)
	}
}

func TestEmbeddedResource(t *testing.T) {
	got := decode(t, call(t, New(), ToolEmbeddedResource, &recorder{}))
	if len(got) != 1 || got[0].Type != "resource" || got[0].Resource == nil {
		t.Fatalf("got %+v, want one resource block", got)
	}
	r := got[0].Resource
	if r.URI != "test://embedded-resource" || r.MIMEType != "text/plain" || r.Text != "This is an embedded resource content." {
		t.Fatalf("resource = %+v", *r)
	}
}

func TestMultipleContentTypes(t *testing.T) {
	got := decode(t, call(t, New(), ToolMultipleContentTypes, &recorder{}))
	if len(got) != 3 {
		t.Fatalf("got %d blocks, want 3", len(got))
	}
	if got[0].Type != "text" || got[0].Text != "Multiple content types test:" {
		t.Errorf("block 0 = %+v", got[0])
	}
	checkPNG(t, got[1])
	r := got[2].Resource
	if got[2].Type != "resource" || r == nil || r.URI != "test://mixed-content-resource" || r.MIMEType != "application/json" {
		t.Fatalf("block 2 = %+v", got[2])
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(r.Text), &body); err != nil || body["test"] != "data" || body["value"] != float64(123) {
		t.Errorf("resource text %q, want {\"test\":\"data\",\"value\":123} (%v)", r.Text, err)
	}
}

func TestErrorHandling(t *testing.T) {
	res := call(t, New(), ToolErrorHandling, &recorder{})
	if !res.IsError {
		t.Fatal("isError not set")
	}
	got := decode(t, res)
	if len(got) == 0 || got[0].Type != "text" || got[0].Text == "" {
		t.Fatalf("first block must be non-empty text, got %+v", got)
	}
	// The scenario reads result.isError, so it must survive marshalling.
	b, _ := json.Marshal(res)
	if !bytes.Contains(b, []byte(`"isError":true`)) {
		t.Errorf("marshalled result lacks isError: %s", b)
	}
}

func TestProgressWithToken(t *testing.T) {
	p := New()
	rec := &recorder{}
	start := time.Now()
	res, err := p.CallTool(context.Background(), tools.Call{
		Name:          ToolWithProgress,
		Arguments:     json.RawMessage(`{}`),
		ProgressToken: json.RawMessage(`"progress-test-1"`),
	}, rec)
	if err != nil {
		t.Fatal(err)
	}
	done := time.Now()
	if got := decode(t, res); len(got) != 1 || got[0].Type != "text" {
		t.Errorf("result = %+v", got)
	}
	ev := rec.snapshot()
	if len(ev) != 3 {
		t.Fatalf("got %d notifications, want 3: %+v", len(ev), ev)
	}
	for i, want := range []float64{0, 50, 100} {
		e := ev[i]
		if e.kind != "progress" || e.progress != want || e.total != 100 || e.message == "" {
			t.Errorf("notification %d = %+v, want progress %v/100", i, e, want)
		}
	}
	// The scenario expects the steps spread out (~50 ms apart), all before
	// the result. Allow scheduler slack below the nominal delay.
	for i := 1; i < len(ev); i++ {
		if gap := ev[i].at.Sub(ev[i-1].at); gap < defaultStepDelay*8/10 {
			t.Errorf("gap before notification %d is %v, want about %v", i, gap, defaultStepDelay)
		}
	}
	if !ev[0].at.After(start) || ev[2].at.After(done) {
		t.Error("notifications not sent during the call")
	}
}

func TestProgressWithoutTokenSendsNothing(t *testing.T) {
	rec := &recorder{}
	for _, token := range []json.RawMessage{nil, json.RawMessage(`null`)} {
		if _, err := New().CallTool(context.Background(), tools.Call{Name: ToolWithProgress, ProgressToken: token}, rec); err != nil {
			t.Fatal(err)
		}
	}
	if ev := rec.snapshot(); len(ev) != 0 {
		t.Fatalf("sent %d notifications without a progress token", len(ev))
	}
}

func TestProgressStopsOnCancel(t *testing.T) {
	p := New()
	p.stepDelay = 10 * time.Second // a tool that ignored ctx would hang the test
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{onEvent: func(event) { cancel() }}

	start := time.Now()
	res, err := p.CallTool(ctx, tools.Call{Name: ToolWithProgress, ProgressToken: json.RawMessage(`7`)}, rec)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got result %+v, err %v; want context.Canceled", res, err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("took %v to notice cancellation", elapsed)
	}
	if ev := rec.snapshot(); len(ev) != 1 {
		t.Fatalf("sent %d notifications, want only the one before cancel", len(ev))
	}
}

func TestProgressAlreadyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := &recorder{}
	_, err := New().CallTool(ctx, tools.Call{Name: ToolWithProgress, ProgressToken: json.RawMessage(`1`)}, rec)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if ev := rec.snapshot(); len(ev) != 0 {
		t.Fatalf("sent %d notifications on a dead call", len(ev))
	}
}

func TestNotifierErrorFailsCall(t *testing.T) {
	boom := errors.New("stream gone")
	rec := &recorder{err: boom}
	_, err := New().CallTool(context.Background(), tools.Call{Name: ToolWithProgress, ProgressToken: json.RawMessage(`1`)}, rec)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the notifier's error", err)
	}
}

func TestWithLogging(t *testing.T) {
	rec := &recorder{}
	res := call(t, New(), ToolWithLogging, rec)
	if got := decode(t, res); len(got) != 1 || got[0].Text == "" {
		t.Errorf("result = %+v", got)
	}
	ev := rec.snapshot()
	want := []string{"Tool execution started", "Tool processing data", "Tool execution completed"}
	if len(ev) != len(want) {
		t.Fatalf("got %d log messages, want %d", len(ev), len(want))
	}
	for i, w := range want {
		if ev[i].kind != "log" || ev[i].level != "info" || ev[i].data != w || ev[i].logger == "" {
			t.Errorf("log %d = %+v, want info %q", i, ev[i], w)
		}
		if i > 0 && ev[i].at.Sub(ev[i-1].at) < defaultStepDelay*8/10 {
			t.Errorf("log %d came too soon after the previous one", i)
		}
	}
}

func TestWithLoggingStopsOnCancel(t *testing.T) {
	p := New()
	p.stepDelay = 10 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{onEvent: func(event) { cancel() }}
	if _, err := p.CallTool(ctx, tools.Call{Name: ToolWithLogging}, rec); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if ev := rec.snapshot(); len(ev) != 1 {
		t.Fatalf("sent %d logs, want 1", len(ev))
	}
}

func TestMissingCapability(t *testing.T) {
	p := New()
	for _, caps := range []json.RawMessage{nil, json.RawMessage(`{}`), json.RawMessage(`{"elicitation":{}}`)} {
		ctx := context.Background()
		if caps != nil {
			ctx = tools.WithClientCapabilities(ctx, caps)
		}
		_, err := p.CallTool(ctx, tools.Call{Name: ToolMissingCapability, Arguments: json.RawMessage(`{}`)}, &recorder{})
		var rpc *tools.RPCError
		if !errors.As(err, &rpc) {
			t.Fatalf("caps %s: got %v, want *tools.RPCError", caps, err)
		}
		if rpc.Code != -32021 {
			t.Errorf("caps %s: code %d, want -32021", caps, rpc.Code)
		}
		// The suite insists on an object keyed by capability, not a list.
		var data struct {
			RequiredCapabilities map[string]json.RawMessage `json:"requiredCapabilities"`
		}
		if err := json.Unmarshal(rpc.Data, &data); err != nil || string(data.RequiredCapabilities["sampling"]) != "{}" {
			t.Errorf("caps %s: data %s, want requiredCapabilities.sampling = {}", caps, rpc.Data)
		}
	}

	ctx := tools.WithClientCapabilities(context.Background(), json.RawMessage(`{"sampling":{}}`))
	res, err := p.CallTool(ctx, tools.Call{Name: ToolMissingCapability}, &recorder{})
	if err != nil || res.IsError {
		t.Fatalf("with sampling declared: res %+v, err %v", res, err)
	}
}

func TestStreamingElicitationIsAPlainResult(t *testing.T) {
	rec := &recorder{}
	got := decode(t, call(t, New(), ToolStreamingElicitation, rec))
	if len(got) != 1 || got[0].Type != "text" {
		t.Fatalf("got %+v", got)
	}
	if ev := rec.snapshot(); len(ev) != 0 {
		t.Fatalf("sent %d notifications", len(ev))
	}
}

func TestLoggingToolAlwaysTriesToLog(t *testing.T) {
	rec := &recorder{}
	res := call(t, New(), ToolLoggingTool, rec)
	if res.IsError {
		t.Fatal("isError set")
	}
	// Dropping it is the Notifier's decision; the tool must still try, or
	// the no-log-without-logLevel check would pass without testing anything.
	if ev := rec.snapshot(); len(ev) != 1 || ev[0].kind != "log" || ev[0].level != "info" {
		t.Fatalf("events = %+v", ev)
	}
}

func TestTriggerHooks(t *testing.T) {
	var toolsCalls, promptsCalls int
	p := New(
		WithToolsChangedHook(func(context.Context) error { toolsCalls++; return nil }),
		WithPromptsChangedHook(func(context.Context) error { promptsCalls++; return nil }),
	)
	call(t, p, ToolTriggerToolChange, &recorder{})
	call(t, p, ToolTriggerPromptChange, &recorder{})
	call(t, p, ToolTriggerPromptChange, &recorder{})
	if toolsCalls != 1 || promptsCalls != 2 {
		t.Fatalf("hooks called %d/%d times, want 1/2", toolsCalls, promptsCalls)
	}

	// Without hooks the triggers still succeed: the suite calls them even
	// when it is about to skip the list-changed checks.
	call(t, New(), ToolTriggerToolChange, &recorder{})

	boom := errors.New("bus down")
	failing := New(WithToolsChangedHook(func(context.Context) error { return boom }))
	if _, err := failing.CallTool(context.Background(), tools.Call{Name: ToolTriggerToolChange}, &recorder{}); !errors.Is(err, boom) {
		t.Fatalf("got %v, want hook error", err)
	}
}

func TestCallErrors(t *testing.T) {
	p := New()
	if _, err := p.CallTool(context.Background(), tools.Call{Name: "nope"}, &recorder{}); !errors.Is(err, tools.ErrUnknownTool) {
		t.Errorf("unknown tool: got %v", err)
	}
	for _, args := range []string{`[]`, `"x"`, `42`, `{`} {
		_, err := p.CallTool(context.Background(), tools.Call{Name: ToolSimpleText, Arguments: json.RawMessage(args)}, &recorder{})
		var argErr *tools.ArgumentError
		if !errors.As(err, &argErr) {
			t.Errorf("arguments %s: got %v, want *tools.ArgumentError", args, err)
		}
	}
	for _, args := range []string{``, `null`, `{}`, ` {"extra": 1} `} {
		if _, err := p.CallTool(context.Background(), tools.Call{Name: ToolSimpleText, Arguments: json.RawMessage(args)}, &recorder{}); err != nil {
			t.Errorf("arguments %q rejected: %v", args, err)
		}
	}
}

func TestThroughRegistry(t *testing.T) {
	r, err := tools.NewRegistry(New())
	if err != nil {
		t.Fatal(err)
	}
	list, err := r.ListTools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(wantTools) {
		t.Fatalf("registry lists %d tools, want %d", len(list), len(wantTools))
	}
	// A nil Notifier must be safe through the registry.
	res, err := r.CallTool(context.Background(), tools.Call{Name: ToolWithLogging}, nil)
	if err != nil || res == nil {
		t.Fatalf("res %+v, err %v", res, err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	p := New()
	p.stepDelay = time.Millisecond
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := wantTools[i%len(wantTools)]
			rec := &recorder{}
			ctx := tools.WithClientCapabilities(context.Background(), json.RawMessage(`{"sampling":{}}`))
			if _, err := p.CallTool(ctx, tools.Call{Name: name, ProgressToken: json.RawMessage(`1`)}, rec); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}(i)
	}
	wg.Wait()
}
