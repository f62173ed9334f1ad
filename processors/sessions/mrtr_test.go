package sessions_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors/mrtr"
	"github.com/mcpstream/mcpstream/processors/sessions"
)

// A stateless tools/call that answers an input_required result carries
// its answers to the executor; a malformed one, or a state the platform
// did not hand out to this caller for this call, is refused before any job
// exists.
func TestRetryOfToolCall(t *testing.T) {
	env := testEnv()
	env.States = mrtr.NewSigner([]byte("deployment key"))
	state, err := env.States.Seal(mrtr.Origin{Principal: alice, Method: "tools/call", Name: "echo", Arguments: json.RawMessage(`{"a":1}`)}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	call := func(params string) sessions.Outcome {
		return sessions.Handle(env, nil, req("tools/call", params, stateless), nextOff, now)
	}
	out := call(fmt.Sprintf(`{"name":"echo","arguments":{"a":1},"inputResponses":{"k":{"action":"accept"}},"requestState":%q}`, state))
	if out.Forward == nil || string(out.Forward.InputResponses) != `{"k":{"action":"accept"}}` || out.Forward.RequestState != state {
		t.Fatalf("valid retry: forward %+v, reply %+v", out.Forward, out.Reply)
	}
	if out := call(`{"name":"echo","arguments":{"a":1},"inputResponses":{"k":{"action":"accept"}}}`); out.Forward == nil || out.Forward.RequestState != "" {
		t.Fatalf("answers without a state are the client's to give: %+v", out)
	}
	for name, params := range map[string]string{
		"tampered":        fmt.Sprintf(`{"name":"echo","arguments":{"a":1},"requestState":%q}`, state+"-TAMPERED"),
		"other arguments": fmt.Sprintf(`{"name":"echo","arguments":{"a":2},"requestState":%q}`, state),
		"number answer":   `{"name":"echo","inputResponses":{"user_name":12345}}`,
		"null responses":  `{"name":"echo","inputResponses":null}`,
	} {
		out := call(params)
		if out.Forward != nil || out.Reply == nil {
			t.Errorf("%s: forwarded %+v", name, out.Forward)
			continue
		}
		if b := decodeBody(t, out.Reply.Message); b.Error == nil || b.Error.Code != jsonrpc.CodeInvalidParams {
			t.Errorf("%s: reply %s, want -32602", name, out.Reply.Message)
		}
	}
	// Another principal presenting the state.
	out = sessions.Handle(env, nil, req("tools/call", fmt.Sprintf(`{"name":"echo","arguments":{"a":1},"requestState":%q}`, state), stateless, principal("bearer:mallory")), nextOff, now)
	if out.Forward != nil {
		t.Fatal("a state handed out to alice was accepted from mallory")
	}
}

// prompts/get is answered by the processor itself: its input_required
// result and the retry that completes it.
func TestInputRequiredPrompt(t *testing.T) {
	env := catalogEnv(t)
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}`
	get := func(extra string) body {
		out := sessions.Handle(env, nil, req("prompts/get", `{"name":"test_input_required_result_prompt",`+meta+extra+`}`, stateless), nextOff, now)
		if out.Reply == nil {
			t.Fatal("no reply")
		}
		return decodeBody(t, out.Reply.Message)
	}
	first := get("")
	if first.Error != nil || first.Result["resultType"] != "input_required" {
		t.Fatalf("round 1: %+v", first)
	}
	reqs, _ := first.Result["inputRequests"].(map[string]any)
	uc, _ := reqs["user_context"].(map[string]any)
	state, _ := first.Result["requestState"].(string)
	if uc["method"] != "elicitation/create" || state == "" {
		t.Fatalf("round 1 asks %v with state %q", reqs, state)
	}
	second := get(fmt.Sprintf(`,"inputResponses":{"user_context":{"action":"accept","content":{"context":"test context"}}},"requestState":%q`, state))
	if second.Error != nil || second.Result["resultType"] != "complete" || fmt.Sprint(second.Result["messages"]) == "" {
		t.Fatalf("round 2: %+v", second)
	}
	msgs, _ := json.Marshal(second.Result["messages"])
	if want := `Context: test context`; !strings.Contains(string(msgs), want) {
		t.Fatalf("round 2 messages %s lack %q", msgs, want)
	}
	if tampered := get(fmt.Sprintf(`,"requestState":%q`, state+"x")); tampered.Error == nil || tampered.Error.Code != jsonrpc.CodeInvalidParams {
		t.Fatalf("tampered state: %+v", tampered)
	}
	// Without elicitation declared the prompt may not ask: -32021.
	out := sessions.Handle(env, nil, req("prompts/get", `{"name":"test_input_required_result_prompt","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`, stateless), nextOff, now)
	if b := decodeBody(t, out.Reply.Message); b.Error == nil || b.Error.Code != jsonrpc.CodeMissingClientCapability {
		t.Fatalf("undeclared elicitation: %s", out.Reply.Message)
	}
}
