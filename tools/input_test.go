package tools

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

func TestAskThroughInputs(t *testing.T) {
	ctx := WithClientCapabilities(context.Background(), json.RawMessage(`{"sampling":{},"elicitation":{},"roots":{}}`))
	in := NewInputs(map[string]json.RawMessage{
		"name":  json.RawMessage(`{"action":"accept","content":{"name":"Alice"}}`),
		"extra": json.RawMessage(`{"action":"accept"}`),
	})
	ctx = WithRequester(ctx, in)
	name := InputRequest{Key: "name", Method: MethodElicit, Params: map[string]any{"message": "?"}}
	roots := InputRequest{Key: "roots", Method: MethodListRoots}
	sample := InputRequest{Key: "sample", Method: MethodCreateMessage}

	_, err := Ask(ctx, nil, name, roots, sample)
	var ir *InputRequiredError
	if !errors.As(err, &ir) || len(ir.Requests) != 2 || ir.Requests[0].Key != "roots" || ir.Requests[1].Key != "sample" {
		t.Fatalf("Ask = %v, want both missing requests at once", err)
	}
	got, err := Ask(ctx, nil, name)
	if err != nil || len(got) != 1 || string(got[0]) != `{"action":"accept","content":{"name":"Alice"}}` {
		t.Fatalf("Ask answered = %s, %v", got, err)
	}
	if a := in.Answered(); len(a) != 1 || a["name"] == nil {
		t.Fatalf("Answered = %v; want only the answer the run used", a)
	}
}

func TestAskChecksCapabilityAndShape(t *testing.T) {
	ctx := WithClientCapabilities(context.Background(), json.RawMessage(`{"sampling":{}}`))
	ctx = WithRequester(ctx, NewInputs(map[string]json.RawMessage{"s": json.RawMessage(`{"action":"accept"}`)}))
	_, err := Ask(ctx, nil, InputRequest{Key: "e", Method: MethodElicit})
	var rpc *RPCError
	if !errors.As(err, &rpc) || rpc.Code != CodeMissingRequiredClientCapability || string(rpc.Data) != `{"requiredCapabilities":{"elicitation":{}}}` {
		t.Fatalf("undeclared elicitation: %v", err)
	}
	// A sampling answer that is an elicitation result is refused.
	if _, err := Ask(ctx, nil, InputRequest{Key: "s", Method: MethodCreateMessage}); !errors.As(err, &rpc) || rpc.Code != -32602 {
		t.Fatalf("malformed answer: %v", err)
	}
	if _, err := Ask(ctx, nil, InputRequest{Key: "x", Method: "tools/call"}); err == nil {
		t.Fatal("a non-client method was accepted")
	}
	if _, err := Ask(context.Background(), nil, InputRequest{Key: "x", Method: MethodListRoots}); err == nil {
		t.Fatal("no capabilities at all, yet asked")
	}
	noReq := WithClientCapabilities(context.Background(), json.RawMessage(`{"roots":{}}`))
	if _, err := Ask(noReq, discardNotifier{}, InputRequest{Key: "x", Method: MethodListRoots}); !errors.Is(err, ErrNoRequester) {
		t.Fatalf("no requester: %v", err)
	}
}

func TestCheckInputResponse(t *testing.T) {
	for _, c := range []struct {
		method, raw string
		ok          bool
	}{
		{MethodElicit, `{"action":"decline"}`, true},
		{MethodElicit, `{"action":"maybe"}`, false},
		{MethodElicit, `12345`, false},
		{MethodCreateMessage, `{"role":"assistant","content":{"type":"text","text":"x"},"model":"m"}`, true},
		{MethodCreateMessage, `{"content":{}}`, false},
		{MethodListRoots, `{"roots":[]}`, true},
		{MethodListRoots, `{"roots":null}`, false},
	} {
		if err := CheckInputResponse(c.method, json.RawMessage(c.raw)); (err == nil) != c.ok {
			t.Errorf("CheckInputResponse(%s, %s) = %v, want ok=%v", c.method, c.raw, err, c.ok)
		}
	}
}
