package conformance

import (
	"context"
	"encoding/json"
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
)

// maxSlowComputeSeconds bounds slow_compute so a bad argument cannot hold an
// executor slot for long.
const maxSlowComputeSeconds = 300

type taskDefinition struct {
	definition
	schema      string
	taskSupport string
}

var taskDefinitions = []taskDefinition{
	{definition{ToolGreet, "Greet", "Returns Hello, {name}! at once (never a task).", runGreet},
		`{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`, ""},
	{definition{ToolSlowCompute, "Slow compute", "Sleeps `seconds` seconds, then returns; a task for clients that support them.", runSlowCompute},
		`{"type":"object","properties":{"seconds":{"type":"number","minimum":0},"label":{"type":"string"}}}`, tools.TaskOptional},
	{definition{ToolFailingJob, "Failing job", "Fails with a tool error after about a second; only runs as a task.", runFailingJob},
		emptyObjectSchema, tools.TaskRequired},
	{definition{ToolProtocolErrorJob, "Protocol error job", "Fails with a JSON-RPC internal error (the task ends failed).", runProtocolErrorJob},
		emptyObjectSchema, tools.TaskOptional},
}

func (p *Provider) addTaskTools() {
	for _, d := range taskDefinitions {
		p.handlers[d.name] = d.run
		t := tools.Tool{Name: d.name, Title: d.title, Description: d.description, InputSchema: json.RawMessage(d.schema)}
		if d.taskSupport != "" {
			t.Execution = json.RawMessage(fmt.Sprintf(`{"taskSupport":%q}`, d.taskSupport))
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
