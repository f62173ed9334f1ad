package tools

import (
	"context"
	"encoding/json"
	"errors"
)

// Tool describes one tool as it appears in a tools/list result. The JSON
// fields are kept raw so that providers (built-in or upstream MCP servers)
// can pass through schemas and annotations without a lossy round trip.
type Tool struct {
	Name         string          `json:"name"`
	Title        string          `json:"title,omitempty"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"inputSchema"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
	Annotations  json.RawMessage `json:"annotations,omitempty"`
	// Execution is ToolExecution: {"taskSupport": "forbidden"|"optional"|"required"}.
	Execution json.RawMessage `json:"execution,omitempty"`
	Meta      json.RawMessage `json:"_meta,omitempty"`
}

// TaskSupport values of Tool.Execution.
const (
	TaskForbidden = "forbidden"
	TaskOptional  = "optional"
	TaskRequired  = "required"
)

// TaskSupport reads execution.taskSupport; absent means forbidden.
func (t Tool) TaskSupport() string {
	var e struct {
		TaskSupport string `json:"taskSupport"`
	}
	if len(t.Execution) == 0 || json.Unmarshal(t.Execution, &e) != nil {
		return TaskForbidden
	}
	switch e.TaskSupport {
	case TaskOptional, TaskRequired:
		return e.TaskSupport
	}
	return TaskForbidden
}

// Call is one tools/call invocation as an executor hands it to a provider.
type Call struct {
	// Name is the tool name as the provider knows it (namespacing already removed).
	Name string
	// Arguments is the raw "arguments" object; nil when the client sent none.
	Arguments json.RawMessage
	// ProgressToken is the raw _meta.progressToken; nil when the client asked for no progress.
	ProgressToken json.RawMessage
	// SessionID is empty for stateless (2026-07-28) requests.
	SessionID string
	// EventID identifies the request across retries (see streams.EventID).
	EventID string
	// InputResponses and RequestState answer an earlier input_required
	// result (2026-07-28 MRTR); nil and empty otherwise.
	InputResponses json.RawMessage
	RequestState   string
	// Task is set when the call runs as a task: no notifications reach the
	// caller, who polls tasks/get instead.
	Task bool
}

// Notifier sends notifications that belong to one running call. They reach
// the client on the request's stream in the order they were sent, and before
// the call's result.
type Notifier interface {
	// Progress sends notifications/progress. It is a no-op when the call
	// carried no progress token.
	Progress(ctx context.Context, progress, total float64, message string) error
	// Log sends notifications/message with the given level (debug, info,
	// notice, warning, error, critical, alert, emergency).
	Log(ctx context.Context, level, logger string, data any) error
}

// Provider is a source of tools: built-in Go code, or an upstream MCP server.
type Provider interface {
	// Name is unique among configured providers; used in metrics and, for
	// upstream servers, as the namespace prefix of their tools.
	Name() string
	// ListTools returns the provider's tools in a stable order.
	ListTools(ctx context.Context) ([]Tool, error)
	// CallTool runs one tool. A tool that fails in its own domain returns a
	// Result with IsError set and a nil error; a non-nil error means the call
	// could not be made at all (unknown tool: ErrUnknownTool; bad arguments:
	// an *ArgumentError).
	CallTool(ctx context.Context, call Call, n Notifier) (*Result, error)
}

// Result is a CallToolResult.
type Result struct {
	Content           []json.RawMessage `json:"content"`
	StructuredContent json.RawMessage   `json:"structuredContent,omitempty"`
	IsError           bool              `json:"isError,omitempty"`
	// ResultType is 2026-07-28's result discriminator; the executor sets
	// "complete" when a provider leaves it empty.
	ResultType string          `json:"resultType,omitempty"`
	Meta       json.RawMessage `json:"_meta,omitempty"`
}

// ErrUnknownTool is returned by CallTool for a name the provider does not have.
var ErrUnknownTool = errors.New("unknown tool")

// ArgumentError reports arguments that do not fit the tool's input schema;
// the platform answers it with JSON-RPC -32602.
type ArgumentError struct{ Msg string }

func (e *ArgumentError) Error() string { return "invalid arguments: " + e.Msg }
