package tools

import (
	"context"
	"encoding/json"
	"errors"
)

// TasksExtension is the tasks extension's identifier (SEP-2663).
const TasksExtension = "io.modelcontextprotocol/tasks"

// MetaEscalates in a Tool's _meta marks a task-supporting tool that
// decides itself when its call becomes a task (Escalate), instead of every
// call from a task-capable client becoming one at once: a tool that first
// gathers input synchronously (input_required rounds), then works alone.
const MetaEscalates = "io.mcpstream/escalates"

// Escalator is implemented by the Notifier of a call that can be turned
// into a task while it runs.
type Escalator interface {
	Escalate(ctx context.Context) error
}

// ErrCannotEscalate means the caller cannot take a task (it did not declare
// the tasks extension, or speaks 2025-11-25): the tool goes on and its
// caller waits for the result.
var ErrCannotEscalate = errors.New("this call cannot become a task")

// Escalate turns the running call into a task through n, if n can.
func Escalate(ctx context.Context, n Notifier) error {
	if e, ok := n.(Escalator); ok {
		return e.Escalate(ctx)
	}
	return ErrCannotEscalate
}

// Escalates reports whether the tool escalates its calls itself.
func (t Tool) Escalates() bool {
	var m map[string]any
	if len(t.Meta) == 0 || json.Unmarshal(t.Meta, &m) != nil {
		return false
	}
	v, _ := m[MetaEscalates].(bool)
	return v
}

// DeclaresTasks reports whether client capabilities (per request in
// 2026-07-28) include the tasks extension.
func DeclaresTasks(caps []byte) bool {
	var c struct {
		Extensions map[string]json.RawMessage `json:"extensions"`
	}
	if len(caps) == 0 || json.Unmarshal(caps, &c) != nil {
		return false
	}
	_, ok := c.Extensions[TasksExtension]
	return ok
}
