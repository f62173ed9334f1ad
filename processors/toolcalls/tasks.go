package toolcalls

import (
	"encoding/json"
	"time"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/schemas"
)

// PollIntervalMs is the polling interval suggested to task clients.
const PollIntervalMs = 500

// Task statuses (tasks extension).
const (
	TaskWorking       = "working"
	TaskInputRequired = "input_required"
	TaskCompleted     = "completed"
	TaskFailed        = "failed"
	TaskCancelled     = "cancelled"
)

// TaskStatus derives a task's status from the call's state: the state is
// the single record of the task, so status never disagrees with it.
func TaskStatus(st *schemas.ToolCallState) string {
	if st.Status != schemas.CallCompleted {
		return TaskWorking
	}
	code, isErr := jsonrpc.IsError(st.Response)
	switch {
	case isErr && (code == jsonrpc.CodeRequestCancelled || st.CancelRequested):
		return TaskCancelled
	case isErr:
		return TaskFailed
	}
	return TaskCompleted
}

// taskFields is the Task object of a call; detailed adds what tasks/get
// inlines for the status (result, error).
func taskFields(st *schemas.ToolCallState, detailed bool) map[string]any {
	updated := st.AcceptedAt
	if !st.CompletedAt.IsZero() {
		updated = st.CompletedAt
	}
	ttl := any(nil)
	if st.TaskTTLMs > 0 {
		ttl = st.TaskTTLMs
	}
	status := TaskStatus(st)
	t := map[string]any{
		"taskId":         st.EventID,
		"status":         status,
		"createdAt":      st.AcceptedAt.UTC().Format(time.RFC3339Nano),
		"lastUpdatedAt":  updated.UTC().Format(time.RFC3339Nano),
		"ttlMs":          ttl,
		"pollIntervalMs": PollIntervalMs,
	}
	if !detailed {
		return t
	}
	var body struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	_ = json.Unmarshal(st.Response, &body)
	switch status {
	case TaskCompleted:
		t["result"] = body.Result
	case TaskFailed:
		t["error"] = body.Error
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(body.Error, &e) == nil && e.Message != "" {
			t["statusMessage"] = e.Message
		}
	case TaskCancelled:
		t["statusMessage"] = "cancelled by the client"
	}
	return t
}

// createTaskResult is the answer to a tools/call that became a task.
func createTaskResult(st *schemas.ToolCallState) []byte {
	t := taskFields(st, false)
	t["resultType"] = "task"
	body, _ := jsonrpc.ResultBody(t)
	return body
}

func ack() []byte { return []byte(`{"result":{"resultType":"complete"}}`) }

func unknownTask(id string) []byte {
	return jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "unknown task: %s", id))
}

// onQuery answers tasks/get, tasks/update and tasks/cancel. A task is
// visible only to the principal that created it: to anyone else it does not
// exist.
func onQuery(st *schemas.ToolCallState, c *schemas.ToolControl, now time.Time) Outcome {
	answer := func(body []byte) *schemas.ReplyEvent {
		return &schemas.ReplyEvent{Gateway: c.ReplyGateway, ReplyToken: c.ReplyToken, EventID: c.EventID,
			Kind: schemas.ReplyResponse, HTTPStatus: 200, Message: body, ProducedAt: now}
	}
	if st == nil || !st.Task || st.Principal != c.Principal {
		return Outcome{Replies: []*schemas.ReplyEvent{answer(unknownTask(c.EventID))}}
	}
	switch c.Method {
	case "tasks/get":
		t := taskFields(st, true)
		t["resultType"] = "complete"
		body, err := jsonrpc.ResultBody(t)
		if err != nil {
			body = jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInternalError, "encoding task: %v", err))
		}
		return Outcome{Replies: []*schemas.ReplyEvent{answer(body)}}
	case "tasks/cancel":
		out := onCancel(st, now)
		out.Replies = append(out.Replies, answer(ack()))
		return out
	case "tasks/update":
		// No input is outstanding unless the tool asked for some; the spec
		// has servers ignore responses to keys not outstanding.
		return Outcome{Replies: []*schemas.ReplyEvent{answer(ack())}}
	}
	return Outcome{Replies: []*schemas.ReplyEvent{answer(jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method not found: %s", c.Method)))}}
}
