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
		if len(st.InputRequests) > 2 { // more than "{}"
			return TaskInputRequired
		}
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

// sessionTask reports a 2025-11-25 task (created in a session): its wire
// shape is the core tasks utility's (ttl, pollInterval, tasks/result),
// not the 2026-07-28 extension's.
func sessionTask(st *schemas.ToolCallState) bool { return st.SessionID != "" }

// taskFields is the Task object of a call; detailed adds what tasks/get
// inlines for the status (result, error) in the tasks extension.
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
	if sessionTask(st) {
		t["ttl"], t["pollInterval"] = t["ttlMs"], t["pollIntervalMs"]
		delete(t, "ttlMs")
		delete(t, "pollIntervalMs")
		if status == TaskCancelled {
			t["statusMessage"] = "The task was cancelled by request."
		}
		return t
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
	case TaskInputRequired:
		t["inputRequests"] = json.RawMessage(st.InputRequests)
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
	if sessionTask(st) {
		body, _ := jsonrpc.ResultBody(map[string]any{"task": t})
		return body
	}
	t["resultType"] = "task"
	body, _ := jsonrpc.ResultBody(t)
	return body
}

// withRelatedTask adds the related-task _meta that 2025-11-25 asks on a
// task's result (tasks/result); errors pass unchanged.
func withRelatedTask(body []byte, taskID string) []byte {
	var msg map[string]json.RawMessage
	if json.Unmarshal(body, &msg) != nil || msg["result"] == nil {
		return body
	}
	var res map[string]any
	if json.Unmarshal(msg["result"], &res) != nil {
		return body
	}
	meta, _ := res["_meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["io.modelcontextprotocol/related-task"] = map[string]any{"taskId": taskID}
	res["_meta"] = meta
	out, err := jsonrpc.ResultBody(res)
	if err != nil {
		return body
	}
	return out
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
	if st == nil || !st.Task || st.Principal != c.Principal || st.SessionID != c.SessionID {
		return Outcome{Replies: []*schemas.ReplyEvent{answer(unknownTask(c.EventID))}}
	}
	if sessionTask(st) {
		return onSessionQuery(st, c, now, answer)
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
		out := onUpdate(st, c.Payload, now)
		out.Replies = append(out.Replies, answer(ack()))
		return out
	}
	return Outcome{Replies: []*schemas.ReplyEvent{answer(jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method not found: %s", c.Method)))}}
}

// onSessionQuery answers the 2025-11-25 tasks utility.
func onSessionQuery(st *schemas.ToolCallState, c *schemas.ToolControl, now time.Time, answer func([]byte) *schemas.ReplyEvent) Outcome {
	task := func(st *schemas.ToolCallState) []byte {
		body, err := jsonrpc.ResultBody(taskFields(st, false))
		if err != nil {
			return jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInternalError, "encoding task: %v", err))
		}
		return body
	}
	switch c.Method {
	case "tasks/get":
		return Outcome{Replies: []*schemas.ReplyEvent{answer(task(st))}}
	case "tasks/result":
		if st.Status == schemas.CallCompleted {
			return Outcome{Replies: []*schemas.ReplyEvent{answer(withRelatedTask(st.Response, st.EventID))}}
		}
		// Blocks until the task ends: the request waits like a caller of
		// the call itself, and completion answers it.
		next := *st
		next.Waiters = append(append([]schemas.Waiter{}, st.Waiters...), schemas.Waiter{Gateway: c.ReplyGateway, ReplyToken: c.ReplyToken})
		return Outcome{State: &next}
	case "tasks/cancel":
		if st.Status == schemas.CallCompleted {
			return Outcome{Replies: []*schemas.ReplyEvent{answer(jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInvalidParams,
				"task %s is already %s", st.EventID, TaskStatus(st))))}}
		}
		// 2025-11-25 wants the task cancelled before the answer: it is,
		// in the table; the holder is told to stop, and its late result is
		// ignored like any result of a completed call.
		holder, inc := st.ClaimExecutor, st.ClaimIncarnation
		cancelled := *st
		cancelled.CancelRequested = true
		out := complete(&cancelled, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeRequestCancelled, "task cancelled by the client")), now)
		if holder != "" {
			out.Commands = append(out.Commands, &schemas.ExecutorCommand{Executor: holder, Incarnation: inc,
				EventID: st.EventID, Kind: schemas.CommandCancel, Attempt: st.Attempts, ProducedAt: now})
		}
		out.Replies = append(out.Replies, answer(task(out.State)))
		return out
	}
	return Outcome{Replies: []*schemas.ReplyEvent{answer(jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method not found: %s", c.Method)))}}
}

// DefaultTaskTTLMs is the ttlMs of a call escalated into a task.
const DefaultTaskTTLMs = 60 * 60 * 1000

// onInput records what the holder of a task asks its client: tasks/get
// shows it (status input_required) until tasks/update answers it.
func onInput(st *schemas.ToolCallState, c *schemas.ToolControl) Outcome {
	if st == nil || st.Status == schemas.CallCompleted || !st.Task ||
		st.ClaimExecutor != c.Executor || st.ClaimIncarnation != c.Incarnation {
		return Outcome{}
	}
	var have, add map[string]json.RawMessage
	_ = json.Unmarshal(st.InputRequests, &have)
	if json.Unmarshal(c.Payload, &add) != nil {
		return Outcome{}
	}
	if have == nil {
		have = map[string]json.RawMessage{}
	}
	for k, v := range add {
		have[k] = v
	}
	next := *st
	next.InputRequests, _ = json.Marshal(have)
	return Outcome{State: &next}
}

// onUpdate hands the answers to outstanding input requests to the holder.
// Answers to keys not outstanding (never asked, already answered) are
// ignored, as the tasks extension asks; a partial answer leaves the rest
// outstanding.
func onUpdate(st *schemas.ToolCallState, responses []byte, now time.Time) Outcome {
	var have, got map[string]json.RawMessage
	if st.Status == schemas.CallCompleted || json.Unmarshal(st.InputRequests, &have) != nil || json.Unmarshal(responses, &got) != nil {
		return Outcome{}
	}
	answered := map[string]json.RawMessage{}
	for k, v := range got {
		if _, ok := have[k]; ok {
			answered[k] = v
			delete(have, k)
		}
	}
	if len(answered) == 0 || st.ClaimExecutor == "" {
		return Outcome{}
	}
	msg, _ := json.Marshal(answered)
	next := *st
	next.InputRequests = nil
	if len(have) > 0 {
		next.InputRequests, _ = json.Marshal(have)
	}
	return Outcome{State: &next, Commands: []*schemas.ExecutorCommand{{Executor: st.ClaimExecutor, Incarnation: st.ClaimIncarnation,
		EventID: st.EventID, Kind: schemas.CommandTaskInput, Attempt: st.Attempts, Message: msg, ProducedAt: now}}}
}

// onEscalate turns a running call into a task: a tool that found it will
// take long (or that gathered its input and now works alone) lets its
// caller go with the task handle. Only the holder may, and only for a
// caller that can poll (the executor checked its capabilities).
func onEscalate(st *schemas.ToolCallState, c *schemas.ToolControl, now time.Time) Outcome {
	if st == nil || st.Status == schemas.CallCompleted || st.Task ||
		st.ClaimExecutor != c.Executor || st.ClaimIncarnation != c.Incarnation {
		return Outcome{}
	}
	next := *st
	next.Task = true
	next.TaskTTLMs = DefaultTaskTTLMs
	next.Waiters = nil
	out := Outcome{State: &next}
	for _, w := range st.Waiters {
		out.Replies = append(out.Replies, taskReply(w, &next, now))
	}
	return out
}
