package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mcpstream/mcpstream/tools"
)

// fakeClient answers every request at once, as a 2025-11-25 client on the
// call's stream would, and records what it was asked.
type fakeClient struct {
	tools.Notifier
	asked  []tools.InputRequest
	answer func(tools.InputRequest) json.RawMessage
}

func (f *fakeClient) Request(_ context.Context, reqs ...tools.InputRequest) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(reqs))
	for i, r := range reqs {
		f.asked = append(f.asked, r)
		out[i] = f.answer(r)
	}
	return out, nil
}

func allCaps() context.Context {
	return tools.WithClientCapabilities(context.Background(), json.RawMessage(`{"sampling":{},"elicitation":{},"roots":{}}`))
}

func TestAskingToolsThroughAStream(t *testing.T) {
	p := New()
	client := &fakeClient{answer: func(r tools.InputRequest) json.RawMessage {
		if r.Method == tools.MethodCreateMessage {
			return json.RawMessage(`{"role":"assistant","content":{"type":"text","text":"This is a test response from the client"},"model":"m"}`)
		}
		return json.RawMessage(`{"action":"accept","content":{"username":"testuser"}}`)
	}}
	res, err := p.CallTool(allCaps(), tools.Call{Name: ToolSampling, Arguments: json.RawMessage(`{"prompt":"Test prompt"}`)}, client)
	if err != nil || !strings.Contains(string(res.Content[0]), "LLM response: This is a test response from the client") {
		t.Fatalf("sampling: %+v, %v", res, err)
	}
	params, _ := json.Marshal(client.asked[0].Params)
	if client.asked[0].Method != tools.MethodCreateMessage || !strings.Contains(string(params), `"text":"Test prompt"`) || !strings.Contains(string(params), `"maxTokens":100`) {
		t.Fatalf("sampling request: %s %s", client.asked[0].Method, params)
	}
	for _, name := range []string{ToolElicitationDefaults, ToolElicitationEnums} {
		client.asked = nil
		res, err := p.CallTool(allCaps(), tools.Call{Name: name}, client)
		if err != nil || !strings.Contains(string(res.Content[0]), "Elicitation completed: action=accept") {
			t.Fatalf("%s: %+v, %v", name, res, err)
		}
		params, _ := json.Marshal(client.asked[0].Params)
		for _, want := range map[string][]string{
			ToolElicitationDefaults: {`"default":"John Doe"`, `"default":30`, `"default":95.5`, `"default":"active"`, `"default":true`},
			ToolElicitationEnums:    {`"enumNames":["Option One"`, `"oneOf":[{"const":"value1"`, `"items":{"anyOf":[`},
		}[name] {
			if !strings.Contains(string(params), want) {
				t.Errorf("%s: request lacks %s: %s", name, want, params)
			}
		}
	}
	// Without the capability, nothing is sent: -32021.
	noSampling := tools.WithClientCapabilities(context.Background(), json.RawMessage(`{"elicitation":{}}`))
	client.asked = nil
	_, err = p.CallTool(noSampling, tools.Call{Name: ToolSampling, Arguments: json.RawMessage(`{"prompt":"x"}`)}, client)
	var rpc *tools.RPCError
	if !errors.As(err, &rpc) || rpc.Code != tools.CodeMissingRequiredClientCapability || len(client.asked) != 0 {
		t.Fatalf("sampling without capability: %v (asked %d)", err, len(client.asked))
	}
}

// A 2026-07-28 call runs once per round against the answers gathered so
// far; what is missing ends the round.
func TestMultiRoundThroughInputs(t *testing.T) {
	p := New()
	run := func(given map[string]json.RawMessage) (*tools.Result, error) {
		ctx := tools.WithRequester(allCaps(), tools.NewInputs(given))
		return p.CallTool(ctx, tools.Call{Name: ToolIRMultiRound}, nil)
	}
	missing := func(err error) []string {
		var ir *tools.InputRequiredError
		if !errors.As(err, &ir) {
			t.Fatalf("want input required, got %v", err)
		}
		var keys []string
		for _, r := range ir.Requests {
			keys = append(keys, r.Key)
		}
		return keys
	}
	_, err := run(nil)
	if k := missing(err); len(k) != 1 || k[0] != "step1" {
		t.Fatalf("round 1 asks %v", k)
	}
	given := map[string]json.RawMessage{"step1": json.RawMessage(`{"action":"accept","content":{"name":"Alice"}}`)}
	_, err = run(given)
	if k := missing(err); len(k) != 1 || k[0] != "step2" {
		t.Fatalf("round 2 asks %v", k)
	}
	given["step2"] = json.RawMessage(`{"action":"accept","content":{"color":"blue"}}`)
	res, err := run(given)
	if err != nil || !strings.Contains(string(res.Content[0]), "Alice likes blue") {
		t.Fatalf("round 3: %+v, %v", res, err)
	}
	// Several requests of one round are asked together.
	_, err = p.CallTool(tools.WithRequester(allCaps(), tools.NewInputs(nil)), tools.Call{Name: ToolIRMultipleInputs}, nil)
	if k := missing(err); len(k) != 3 {
		t.Fatalf("multiple inputs asks %v", k)
	}
	// Only what the client declared.
	onlySampling := tools.WithClientCapabilities(context.Background(), json.RawMessage(`{"sampling":{}}`))
	_, err = p.CallTool(tools.WithRequester(onlySampling, tools.NewInputs(nil)), tools.Call{Name: ToolIRCapabilities}, nil)
	if k := missing(err); len(k) != 1 || k[0] != "greeting" {
		t.Fatalf("capabilities asks %v", k)
	}
}
