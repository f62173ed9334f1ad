package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mcpstream/mcpstream/tools"
)

// Fixtures that ask the client something mid-call (tools.Ask): the
// 2025-11-25 scenarios tools-call-sampling, tools-call-elicitation,
// elicitation-sep1034-defaults and elicitation-sep1330-enums, where the
// request travels on the call's stream, and the 2026-07-28
// input-required-result-* scenarios, where the same code ends the call with
// an input_required result and runs again on the retry. Texts and schemas
// follow the scenario sources and the Go SDK's everything-server.

// Tool and prompt names, fixed by the scenarios.
const (
	ToolSampling            = "test_sampling"
	ToolElicitation         = "test_elicitation"
	ToolElicitationDefaults = "test_elicitation_sep1034_defaults"
	ToolElicitationEnums    = "test_elicitation_sep1330_enums"
	ToolJSONSchema202012    = "json_schema_2020_12_tool"

	ToolIRElicitation    = "test_input_required_result_elicitation"
	ToolIRSampling       = "test_input_required_result_sampling"
	ToolIRListRoots      = "test_input_required_result_list_roots"
	ToolIRRequestState   = "test_input_required_result_request_state"
	ToolIRMultipleInputs = "test_input_required_result_multiple_inputs"
	ToolIRMultiRound     = "test_input_required_result_multi_round"
	ToolIRTamperedState  = "test_input_required_result_tampered_state"
	ToolIRCapabilities   = "test_input_required_result_capabilities"

	PromptInputRequired = "test_input_required_result_prompt"
)

var clientRequestDefinitions = []definition{
	{ToolSampling, "Sampling", "Asks the client's LLM to complete the prompt (sampling/createMessage) and returns its answer.", runSampling},
	{ToolElicitation, "Elicitation", "Asks the user for a username and an email address (elicitation/create).", runElicitation},
	{ToolElicitationDefaults, "Elicitation defaults", "Elicits a form whose string, integer, number, enum and boolean fields have default values (SEP-1034).", runElicitationDefaults},
	{ToolElicitationEnums, "Elicitation enums", "Elicits a form with the five enum shapes of SEP-1330.", runElicitationEnums},
	{ToolJSONSchema202012, "JSON Schema 2020-12", "Has an input schema using JSON Schema 2020-12 ($schema, $defs with $anchor, allOf/anyOf, if/then/else, additionalProperties).", runJSONSchema202012},
	{ToolIRElicitation, "Input required: elicitation", "Asks for the caller's name (elicitation), then greets them.", runIRElicitation},
	{ToolIRSampling, "Input required: sampling", "Asks the client's LLM for the capital of France.", runIRSampling},
	{ToolIRListRoots, "Input required: roots", "Asks for the client's roots and lists them.", runIRListRoots},
	{ToolIRRequestState, "Input required: request state", "Asks for a confirmation; the answer comes back with the verified requestState.", runIRRequestState},
	{ToolIRMultipleInputs, "Input required: several inputs", "Asks for a name, a greeting and the roots in one round.", runIRMultipleInputs},
	{ToolIRMultiRound, "Input required: two rounds", "Asks for a name, then a favourite colour, in two rounds.", runIRMultiRound},
	{ToolIRTamperedState, "Input required: tampered state", "Asks for a confirmation; a retry whose requestState was altered is refused.", runIRRequestState},
	{ToolIRCapabilities, "Input required: capabilities", "Asks only what the client declared it can answer (sampling, elicitation, roots).", runIRCapabilities},
}

// inputSchemas are the input schemas of tools that take arguments (the
// others take an empty object).
var inputSchemas = map[string]string{
	ToolSampling:         `{"type":"object","properties":{"prompt":{"type":"string","description":"The prompt to send to the LLM"}},"required":["prompt"]}`,
	ToolElicitation:      `{"type":"object","properties":{"message":{"type":"string","description":"The message to show the user"}},"required":["message"]}`,
	ToolJSONSchema202012: jsonSchema202012,
}

const jsonSchema202012 = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",` +
	`"$defs":{"address":{"$anchor":"addressDef","type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}}}},` +
	`"properties":{"name":{"type":"string"},"address":{"$ref":"#/$defs/address"},"contactMethod":{"type":"string","enum":["phone","email"]},` +
	`"phone":{"type":"string"},"email":{"type":"string"}},` +
	`"allOf":[{"anyOf":[{"required":["phone"]},{"required":["email"]}]}],` +
	`"if":{"properties":{"contactMethod":{"const":"phone"}},"required":["contactMethod"]},"then":{"required":["phone"]},"else":{"required":["email"]},` +
	`"additionalProperties":false}`

// stringArgument reads a required string argument.
func stringArgument(call tools.Call, name string) (string, error) {
	var args map[string]json.RawMessage
	_ = json.Unmarshal(call.Arguments, &args)
	var v string
	if json.Unmarshal(args[name], &v) != nil || v == "" {
		return "", &tools.ArgumentError{Msg: fmt.Sprintf("%q is required (a non-empty string)", name)}
	}
	return v, nil
}

func objectSchema(properties map[string]any, required ...string) map[string]any {
	s := map[string]any{"type": "object", "properties": properties}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func elicit(key, message string, schema map[string]any) tools.InputRequest {
	return tools.InputRequest{Key: key, Method: tools.MethodElicit,
		Params: map[string]any{"message": message, "requestedSchema": schema}}
}

func sample(key, prompt string, maxTokens int) tools.InputRequest {
	return tools.InputRequest{Key: key, Method: tools.MethodCreateMessage, Params: map[string]any{
		"messages":  []any{map[string]any{"role": "user", "content": map[string]any{"type": "text", "text": prompt}}},
		"maxTokens": maxTokens,
	}}
}

func listRoots(key string) tools.InputRequest {
	return tools.InputRequest{Key: key, Method: tools.MethodListRoots, Params: map[string]any{}}
}

// ask wraps tools.Ask's error with what was asked; errors.As still finds
// the *tools.InputRequiredError and *tools.RPCError the platform needs.
func ask(ctx context.Context, n tools.Notifier, reqs ...tools.InputRequest) ([]json.RawMessage, error) {
	out, err := tools.Ask(ctx, n, reqs...)
	if err != nil {
		keys := make([]string, len(reqs))
		for i, r := range reqs {
			keys[i] = r.Key
		}
		return nil, fmt.Errorf("asking the client (%s): %w", strings.Join(keys, ", "), err)
	}
	return out, nil
}

type elicitResult struct {
	Action  string         `json:"action"`
	Content map[string]any `json:"content"`
}

func readElicit(raw json.RawMessage) elicitResult {
	var r elicitResult
	_ = json.Unmarshal(raw, &r)
	return r
}

// describe renders an elicitation result as the scenarios document it.
func (r elicitResult) describe() string {
	content, _ := json.Marshal(r.Content)
	if r.Content == nil {
		content = []byte("{}")
	}
	return fmt.Sprintf("action=%s, content=%s", r.Action, content)
}

// acceptedString is content[field] of an accepted elicitation.
func (r elicitResult) acceptedString(field string) (string, bool) {
	if r.Action != "accept" {
		return "", false
	}
	s, ok := r.Content[field].(string)
	return s, ok && s != ""
}

// samplingText is the text of a sampling result (content is one block in
// 2025-11-25 without tools, possibly an array with tools).
func samplingText(raw json.RawMessage) string {
	var r struct {
		Content json.RawMessage `json:"content"`
	}
	_ = json.Unmarshal(raw, &r)
	var blocks []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(r.Content, &blocks) != nil {
		var one struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		_ = json.Unmarshal(r.Content, &one)
		blocks = append(blocks, one)
	}
	for _, b := range blocks {
		if b.Type == "text" {
			return b.Text
		}
	}
	return "(non-text response)"
}

func rootURIs(raw json.RawMessage) []string {
	var r struct {
		Roots []struct {
			URI string `json:"uri"`
		} `json:"roots"`
	}
	_ = json.Unmarshal(raw, &r)
	uris := make([]string, 0, len(r.Roots))
	for _, root := range r.Roots {
		uris = append(uris, root.URI)
	}
	return uris
}

func runSampling(ctx context.Context, _ *Provider, call tools.Call, n tools.Notifier) (*tools.Result, error) {
	prompt, err := stringArgument(call, "prompt")
	if err != nil {
		return nil, err
	}
	out, err := ask(ctx, n, sample("sampling", prompt, 100))
	if err != nil {
		return nil, err
	}
	return result(text("LLM response: " + samplingText(out[0]))), nil
}

func runElicitation(ctx context.Context, _ *Provider, call tools.Call, n tools.Notifier) (*tools.Result, error) {
	message, err := stringArgument(call, "message")
	if err != nil {
		return nil, err
	}
	out, err := ask(ctx, n, elicit("elicitation", message, objectSchema(map[string]any{
		"username": map[string]any{"type": "string", "description": "User's response"},
		"email":    map[string]any{"type": "string", "description": "User's email address"},
	}, "username", "email")))
	if err != nil {
		return nil, err
	}
	return result(text("User response: " + readElicit(out[0]).describe())), nil
}

func runElicitationDefaults(ctx context.Context, _ *Provider, _ tools.Call, n tools.Notifier) (*tools.Result, error) {
	out, err := ask(ctx, n, elicit("defaults", "Test defaults for primitives", objectSchema(map[string]any{
		"name":     map[string]any{"type": "string", "description": "User name", "default": "John Doe"},
		"age":      map[string]any{"type": "integer", "description": "User age", "default": 30},
		"score":    map[string]any{"type": "number", "description": "User score", "default": 95.5},
		"status":   map[string]any{"type": "string", "description": "User status", "enum": []string{"active", "inactive", "pending"}, "default": "active"},
		"verified": map[string]any{"type": "boolean", "description": "Verification status", "default": true},
	})))
	if err != nil {
		return nil, err
	}
	return result(text("Elicitation completed: " + readElicit(out[0]).describe())), nil
}

func runElicitationEnums(ctx context.Context, _ *Provider, _ tools.Call, n tools.Notifier) (*tools.Result, error) {
	titled := func(prefix string) []map[string]any {
		return []map[string]any{{"const": "value1", "title": "First " + prefix}, {"const": "value2", "title": "Second " + prefix},
			{"const": "value3", "title": "Third " + prefix}}
	}
	out, err := ask(ctx, n, elicit("enums", "Test enum schemas", objectSchema(map[string]any{
		"untitledSingle": map[string]any{"type": "string", "enum": []string{"option1", "option2", "option3"}},
		"titledSingle":   map[string]any{"type": "string", "oneOf": titled("Option")},
		"legacyEnum": map[string]any{"type": "string", "enum": []string{"opt1", "opt2", "opt3"},
			"enumNames": []string{"Option One", "Option Two", "Option Three"}},
		"untitledMulti": map[string]any{"type": "array", "minItems": 1, "maxItems": 3,
			"items": map[string]any{"type": "string", "enum": []string{"option1", "option2", "option3"}}},
		"titledMulti": map[string]any{"type": "array", "minItems": 1, "maxItems": 3,
			"items": map[string]any{"anyOf": titled("Choice")}},
	})))
	if err != nil {
		return nil, err
	}
	return result(text("Elicitation completed: " + readElicit(out[0]).describe())), nil
}

func runJSONSchema202012(_ context.Context, _ *Provider, call tools.Call, _ tools.Notifier) (*tools.Result, error) {
	args := string(call.Arguments)
	if args == "" {
		args = "{}"
	}
	return result(text("JSON Schema 2020-12 tool called with: " + args)), nil
}

func nameSchema() map[string]any {
	return objectSchema(map[string]any{"name": map[string]any{"type": "string"}}, "name")
}

func runIRElicitation(ctx context.Context, _ *Provider, _ tools.Call, n tools.Notifier) (*tools.Result, error) {
	out, err := ask(ctx, n, elicit("user_name", "What is your name?", nameSchema()))
	if err != nil {
		return nil, err
	}
	r := readElicit(out[0])
	if name, ok := r.acceptedString("name"); ok {
		return result(text(fmt.Sprintf("Hello, %s!", name))), nil
	}
	return result(text("No name given: " + r.describe())), nil
}

func runIRSampling(ctx context.Context, _ *Provider, _ tools.Call, n tools.Notifier) (*tools.Result, error) {
	out, err := ask(ctx, n, sample("capital_question", "What is the capital of France?", 100))
	if err != nil {
		return nil, err
	}
	return result(text("Sampling response: " + samplingText(out[0]))), nil
}

func runIRListRoots(ctx context.Context, _ *Provider, _ tools.Call, n tools.Notifier) (*tools.Result, error) {
	out, err := ask(ctx, n, listRoots("client_roots"))
	if err != nil {
		return nil, err
	}
	uris := rootURIs(out[0])
	return result(text(fmt.Sprintf("Client exposed %d root(s): %s", len(uris), strings.Join(uris, ", ")))), nil
}

// runIRRequestState serves the request-state and tampered-state scenarios.
// The platform verified the echoed requestState before this ran (a
// tampered one never gets here), which is what "state-ok" reports.
func runIRRequestState(ctx context.Context, _ *Provider, call tools.Call, n tools.Notifier) (*tools.Result, error) {
	out, err := ask(ctx, n, elicit("confirm", "Please confirm",
		objectSchema(map[string]any{"ok": map[string]any{"type": "boolean"}}, "ok")))
	if err != nil {
		return nil, err
	}
	r := readElicit(out[0])
	if call.RequestState == "" {
		return result(text("Confirmation received without requestState: " + r.describe())), nil
	}
	return result(text("state-ok: requestState verified; confirmation " + r.describe())), nil
}

func runIRMultipleInputs(ctx context.Context, _ *Provider, _ tools.Call, n tools.Notifier) (*tools.Result, error) {
	out, err := ask(ctx, n,
		elicit("user_name", "What is your name?", nameSchema()),
		sample("greeting", "Generate a greeting", 50),
		listRoots("client_roots"))
	if err != nil {
		return nil, err
	}
	name, _ := readElicit(out[0]).acceptedString("name")
	return result(text(fmt.Sprintf("%s %s — %d root(s) visible", samplingText(out[1]), name, len(rootURIs(out[2]))))), nil
}

func runIRMultiRound(ctx context.Context, _ *Provider, _ tools.Call, n tools.Notifier) (*tools.Result, error) {
	first, err := ask(ctx, n, elicit("step1", "Step 1: What is your name?", nameSchema()))
	if err != nil {
		return nil, err
	}
	second, err := ask(ctx, n, elicit("step2", "Step 2: What is your favorite color?",
		objectSchema(map[string]any{"color": map[string]any{"type": "string"}}, "color")))
	if err != nil {
		return nil, err
	}
	name, _ := readElicit(first[0]).acceptedString("name")
	color, _ := readElicit(second[0]).acceptedString("color")
	return result(text(fmt.Sprintf("Multi-round complete: %s likes %s", name, color))), nil
}

// runIRCapabilities asks only what the client declared it can answer: the
// platform would refuse the others (-32021) anyway.
func runIRCapabilities(ctx context.Context, _ *Provider, _ tools.Call, n tools.Notifier) (*tools.Result, error) {
	var reqs []tools.InputRequest
	if tools.HasClientCapability(ctx, "elicitation") {
		reqs = append(reqs, elicit("user_name", "What is your name?", nameSchema()))
	}
	if tools.HasClientCapability(ctx, "sampling") {
		reqs = append(reqs, sample("greeting", "Generate a short greeting", 50))
	}
	if tools.HasClientCapability(ctx, "roots") {
		reqs = append(reqs, listRoots("client_roots"))
	}
	if len(reqs) == 0 {
		return result(text("No declared client capability supports an input request")), nil
	}
	if _, err := ask(ctx, n, reqs...); err != nil {
		return nil, err
	}
	return result(text("Capability-aware input requests fulfilled")), nil
}

// inputRequiredPrompt is test_input_required_result_prompt: it asks for
// context through tools.Ask (a 2026-07-28 prompts/get gets an
// input_required result, then the prompt on the retry).
func inputRequiredPrompt(ctx context.Context) (*tools.GetPromptResult, error) {
	out, err := tools.Ask(ctx, nil, elicit("user_context", "Please provide context for the prompt",
		objectSchema(map[string]any{"context": map[string]any{"type": "string"}}, "context")))
	var contextText string
	switch {
	case errors.Is(err, tools.ErrNoRequester):
		// A 2025-11-25 session: prompts are answered inside the sessions
		// processor, which cannot wait for the client.
		contextText = "(none: the client cannot be asked for input here)"
	case err != nil:
		return nil, fmt.Errorf("asking the client for context: %w", err)
	default:
		r := readElicit(out[0])
		var ok bool
		if contextText, ok = r.acceptedString("context"); !ok {
			contextText = "(not given: " + r.describe() + ")"
		}
	}
	return &tools.GetPromptResult{Description: "A prompt with elicited context",
		Messages: []tools.PromptMessage{{Role: "user", Content: text("Context: " + contextText)}}}, nil
}
