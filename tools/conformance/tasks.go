package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpstream/mcpstream/tools"
)

// Fixtures of the tasks extension scenarios (tasks-*, 2026-07-28).
const (
	ToolGreet            = "greet"
	ToolSlowCompute      = "slow_compute"
	ToolFailingJob       = "failing_job"
	ToolProtocolErrorJob = "protocol_error_job"
	ToolConfirmDelete    = "confirm_delete"
	ToolMultiInput       = "multi_input"
	ToolWithTask         = "test_tool_with_task"
	// ToolCustomHeader mirrors its region argument in an Mcp-Param-Region
	// header (SEP-2243 x-mcp-header; http-custom-header-server-validation).
	ToolCustomHeader = "test_custom_header"
	// ToolReconnection outlives a gateway's --sse-poll-after, so its stream
	// is closed mid-call and the client resumes (server-sse-polling).
	ToolReconnection = "test_reconnection"
)

// maxSlowComputeSeconds bounds slow_compute so a bad argument cannot hold an
// executor slot for long.
const maxSlowComputeSeconds = 300

type taskDefinition struct {
	definition
	schema      string
	taskSupport string
	escalates   bool
}

var taskDefinitions = []taskDefinition{
	{definition{ToolGreet, "Greet", "Returns Hello, {name}! at once (never a task).", runGreet},
		`{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`, "", false},
	{definition{ToolSlowCompute, "Slow compute", "Sleeps `seconds` seconds, then returns; a task for clients that support them.", runSlowCompute},
		`{"type":"object","properties":{"seconds":{"type":"number","minimum":0},"label":{"type":"string"}}}`, tools.TaskOptional, false},
	{definition{ToolFailingJob, "Failing job", "Fails with a tool error after about a second; only runs as a task.", runFailingJob},
		emptyObjectSchema, tools.TaskRequired, false},
	{definition{ToolProtocolErrorJob, "Protocol error job", "Fails with a JSON-RPC internal error (the task ends failed).", runProtocolErrorJob},
		emptyObjectSchema, tools.TaskOptional, false},
	{definition{ToolConfirmDelete, "Confirm delete", "Asks the client to confirm (elicitation) before pretending to delete `filename`; as a task it waits in input_required.", runConfirmDelete},
		`{"type":"object","properties":{"filename":{"type":"string"}}}`, tools.TaskOptional, false},
	{definition{ToolMultiInput, "Multiple inputs", "Asks the client two questions at once, then answers with both.", runMultiInput},
		emptyObjectSchema, tools.TaskOptional, false},
	{definition{ToolWithTask, "Input, then a task", "Gathers user_name synchronously (input_required), then becomes a task and greets.", runWithTask},
		emptyObjectSchema, tools.TaskRequired, true},
	{definition{ToolReconnection, "Reconnection", "Runs 3 s, so that a gateway polling SSE streams closes its stream mid-call.", runReconnection},
		emptyObjectSchema, "", false},
	{definition{ToolCustomHeader, "Custom header", "Echoes region, which clients also send as the Mcp-Param-Region header.", runCustomHeader},
		`{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"}},"required":["region"]}`, "", false},
}

func (p *Provider) addTaskTools() {
	for _, d := range taskDefinitions {
		p.handlers[d.name] = d.run
		t := tools.Tool{Name: d.name, Title: d.title, Description: d.description, InputSchema: json.RawMessage(d.schema)}
		if d.taskSupport != "" {
			t.Execution = json.RawMessage(fmt.Sprintf(`{"taskSupport":%q}`, d.taskSupport))
		}
		if d.escalates {
			t.Meta = json.RawMessage(fmt.Sprintf(`{%q:true}`, tools.MetaEscalates))
		}
		p.tools = append(p.tools, t)
	}
}

func runGreet(_ context.Context, _ *Provider, call tools.Call, _ tools.Notifier) (*tools.Result, error) {
	var a struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(orEmptyObject(call.Arguments), &a); err != nil {
		return nil, &tools.ArgumentError{Msg: err.Error()}
	}
	if a.Name == "" {
		a.Name = "World"
	}
	return result(text("Hello, " + a.Name + "!")), nil
}

func runSlowCompute(ctx context.Context, _ *Provider, call tools.Call, _ tools.Notifier) (*tools.Result, error) {
	var a struct {
		Seconds float64 `json:"seconds"`
		Label   string  `json:"label"`
	}
	if err := json.Unmarshal(orEmptyObject(call.Arguments), &a); err != nil {
		return nil, &tools.ArgumentError{Msg: err.Error()}
	}
	if a.Seconds < 0 || a.Seconds > maxSlowComputeSeconds {
		return nil, &tools.ArgumentError{Msg: fmt.Sprintf("seconds must be between 0 and %d", maxSlowComputeSeconds)}
	}
	if err := sleep(ctx, time.Duration(a.Seconds*float64(time.Second))); err != nil {
		return nil, err
	}
	return result(text(fmt.Sprintf("computed %s after %gs", a.Label, a.Seconds))), nil
}

func runFailingJob(ctx context.Context, _ *Provider, _ tools.Call, _ tools.Notifier) (*tools.Result, error) {
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}
	return &tools.Result{Content: []json.RawMessage{text("failing_job failed, as it always does")}, IsError: true}, nil
}

func runProtocolErrorJob(context.Context, *Provider, tools.Call, tools.Notifier) (*tools.Result, error) {
	return nil, &tools.RPCError{Code: -32603, Message: "protocol_error_job: internal error, on purpose"}
}

func orEmptyObject(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || string(b) == "null" {
		return json.RawMessage(`{}`)
	}
	return b
}

func taskElicit(key, message string, props map[string]any) tools.InputRequest {
	return tools.InputRequest{Key: key, Method: "elicitation/create", Params: map[string]any{
		"mode": "form", "message": message,
		"requestedSchema": map[string]any{"type": "object", "properties": props},
	}}
}

func accepted(raw json.RawMessage) (map[string]any, bool) {
	var r struct {
		Action  string         `json:"action"`
		Content map[string]any `json:"content"`
	}
	if json.Unmarshal(raw, &r) != nil || r.Action != "accept" {
		return nil, false
	}
	return r.Content, true
}

func runConfirmDelete(ctx context.Context, _ *Provider, call tools.Call, n tools.Notifier) (*tools.Result, error) {
	var a struct {
		Filename string `json:"filename"`
	}
	_ = json.Unmarshal(orEmptyObject(call.Arguments), &a)
	out, err := tools.Ask(ctx, n, taskElicit("confirm_delete", "Delete "+a.Filename+"?",
		map[string]any{"confirm": map[string]any{"type": "boolean"}}))
	if err != nil {
		return nil, err
	}
	if c, ok := accepted(out[0]); ok && c["confirm"] == true {
		return result(text("deleted " + a.Filename)), nil
	}
	return result(text("kept " + a.Filename)), nil
}

func runMultiInput(ctx context.Context, _ *Provider, _ tools.Call, n tools.Notifier) (*tools.Result, error) {
	out, err := tools.Ask(ctx, n,
		taskElicit("name", "Your name?", map[string]any{"name": map[string]any{"type": "string"}}),
		taskElicit("confirm", "Proceed?", map[string]any{"confirm": map[string]any{"type": "boolean"}}))
	if err != nil {
		return nil, err
	}
	first, _ := accepted(out[0])
	second, _ := accepted(out[1])
	return result(text(fmt.Sprintf("received %v and %v", first, second))), nil
}

func runWithTask(ctx context.Context, _ *Provider, _ tools.Call, n tools.Notifier) (*tools.Result, error) {
	out, err := tools.Ask(ctx, n, taskElicit("user_name", "What is your name?",
		map[string]any{"name": map[string]any{"type": "string"}}))
	if err != nil {
		return nil, err // input_required until the client answers
	}
	c, _ := accepted(out[0])
	name, _ := c["name"].(string) // the suite answers {"name": ...}
	if name == "" {
		name, _ = c["user_name"].(string)
	}
	// The input is in; the rest is slow work the caller need not wait for.
	if err := tools.Escalate(ctx, n); err != nil && !errors.Is(err, tools.ErrCannotEscalate) {
		return nil, err
	}
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return nil, err
	}
	return result(text("Hello, " + name + "! (finished as a task)")), nil
}

func runCustomHeader(_ context.Context, _ *Provider, call tools.Call, _ tools.Notifier) (*tools.Result, error) {
	var a struct {
		Region string `json:"region"`
	}
	if err := json.Unmarshal(orEmptyObject(call.Arguments), &a); err != nil {
		return nil, &tools.ArgumentError{Msg: err.Error()}
	}
	return result(text("region " + a.Region)), nil
}

func runReconnection(ctx context.Context, _ *Provider, _ tools.Call, _ tools.Notifier) (*tools.Result, error) {
	if err := sleep(ctx, 3*time.Second); err != nil {
		return nil, err
	}
	return result(text("reconnection test finished")), nil
}
