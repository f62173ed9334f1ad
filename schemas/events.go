package schemas

import (
	"fmt"
	"time"

	"github.com/linkedin/goavro/v2"
)

// RequestKind says what a RequestEvent carries.
type RequestKind string

// Request kinds, as the Avro enum spells them.
const (
	KindRequest       RequestKind = "REQUEST"
	KindNotification  RequestKind = "NOTIFICATION"
	KindSessionDelete RequestKind = "SESSION_DELETE"
	KindResponse      RequestKind = "RESPONSE"
)

// RequestEvent is one MCP message from a client (request_event.avsc).
type RequestEvent struct {
	EventID         string
	Kind            RequestKind
	SessionID       string
	Principal       string
	ProtocolVersion string
	Method          string
	RPCID           []byte // JSON text; nil for notifications
	Params          []byte // JSON text; nil when absent
	ReplyGateway    string
	ReplyToken      string
	ReceivedAt      time.Time
}

// ReplyKind says what a ReplyEvent carries.
type ReplyKind string

// Reply kinds.
const (
	ReplyResponse     ReplyKind = "RESPONSE"
	ReplyNotification ReplyKind = "NOTIFICATION"
	ReplyAccepted     ReplyKind = "ACCEPTED"
)

// ReplyEvent is a message for the gateway holding an HTTP request (reply_event.avsc).
type ReplyEvent struct {
	Gateway    string
	ReplyToken string
	EventID    string
	Kind       ReplyKind
	HTTPStatus int
	SessionID  string
	Message    []byte
	ProducedAt time.Time
}

// SessionLifecycle is a session's lifecycle state.
type SessionLifecycle string

// Session lifecycle states.
const (
	SessionInitializing SessionLifecycle = "INITIALIZING"
	SessionActive       SessionLifecycle = "ACTIVE"
	SessionClosed       SessionLifecycle = "CLOSED"
)

// SessionState is the sessions table value (session_state.avsc).
type SessionState struct {
	SessionID          string
	State              SessionLifecycle
	ProtocolVersion    string
	ClientInfo         []byte
	ClientCapabilities []byte
	Principal          string
	CreatedAt          time.Time
	LastActivity       time.Time
	LastOffset         int64
	Requests           int64
	LogLevel           string
	// Subscriptions are the resource URIs of resources/subscribe, sorted.
	Subscriptions []string
}

// ToolCallStatus is where a tool call stands.
type ToolCallStatus string

// Tool call states.
const (
	CallRunning   ToolCallStatus = "RUNNING"
	CallCompleted ToolCallStatus = "COMPLETED"
)

// Waiter is an HTTP request waiting for a tool call's result.
type Waiter struct {
	Gateway    string
	ReplyToken string
}

// ToolCallState is the toolcalls table value (toolcall_state.avsc).
type ToolCallState struct {
	EventID     string
	SessionID   string
	Principal   string
	Tool        string
	Status      ToolCallStatus
	Response    []byte
	Waiters     []Waiter
	Duplicates  int32
	CallOffset  int64
	AcceptedAt  time.Time
	CompletedAt time.Time
	// Job is the framed ToolJob while the call runs (see toolcall_state.avsc).
	Job              []byte
	Idempotent       bool
	ClaimExecutor    string
	ClaimIncarnation string
	Attempts         int32
	CancelRequested  bool
	Task             bool
	TaskTTLMs        int64
	// InputRequests are a task's outstanding requests to its client.
	InputRequests []byte
	// Fingerprint identifies what the call asked (tool and arguments).
	Fingerprint string
}

// ToolJob is an accepted tool call (tool_job.avsc).
type ToolJob struct {
	EventID       string
	SessionID     string
	Principal     string
	Tool          string
	Arguments     []byte
	ProgressToken []byte
	ReplyGateway  string
	ReplyToken    string
	// ClientCapabilities is the raw ClientCapabilities object for the call.
	ClientCapabilities []byte
	// LogLevel is the lowest log level to send; empty sends none.
	LogLevel   string
	AcceptedAt time.Time
	// Task runs the call as a task (2026-07-28 tasks extension).
	Task      bool
	TaskTTLMs int64
	// InputResponses and RequestState come with a 2026-07-28 tools/call
	// that answers an input_required result (MRTR).
	InputResponses []byte
	RequestState   string
}

// ToolResult is an executor's report of a job (tool_result.avsc).
type ToolResult struct {
	EventID    string
	Executor   string
	Response   []byte
	StartedAt  time.Time
	FinishedAt time.Time
}

func nullable(kind string, b []byte) any {
	if b == nil {
		return nil
	}
	return goavro.Union(kind, b)
}

func unNullBytes(v any) []byte {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	switch x := m["bytes"].(type) {
	case []byte:
		return x
	}
	if s, ok := m["string"].(string); ok {
		return []byte(s)
	}
	return nil
}

func str(m map[string]any, k string) string   { s, _ := m[k].(string); return s }
func i64(m map[string]any, k string) int64    { n, _ := m[k].(int64); return n }
func i32(m map[string]any, k string) int32    { n, _ := m[k].(int32); return n }
func boolean(m map[string]any, k string) bool { b, _ := m[k].(bool); return b }
func ts(m map[string]any, k string) time.Time {
	t, _ := m[k].(time.Time)
	return t
}

// EncodeRequest frames a RequestEvent.
func (r *Registry) EncodeRequest(e *RequestEvent) ([]byte, error) {
	var rpcID any
	if e.RPCID != nil {
		rpcID = goavro.Union("string", string(e.RPCID))
	}
	return r.encode("request_event.avsc", map[string]any{
		"event_id":         e.EventID,
		"kind":             string(e.Kind),
		"session_id":       e.SessionID,
		"principal":        e.Principal,
		"protocol_version": e.ProtocolVersion,
		"method":           e.Method,
		"rpc_id":           rpcID,
		"params":           nullable("bytes", e.Params),
		"reply_gateway":    e.ReplyGateway,
		"reply_token":      e.ReplyToken,
		"received_at":      e.ReceivedAt,
	})
}

// DecodeRequest parses a framed RequestEvent.
func (r *Registry) DecodeRequest(b []byte) (*RequestEvent, error) {
	m, err := r.decode("request_event.avsc", b)
	if err != nil {
		return nil, err
	}
	return &RequestEvent{
		EventID:         str(m, "event_id"),
		Kind:            RequestKind(str(m, "kind")),
		SessionID:       str(m, "session_id"),
		Principal:       str(m, "principal"),
		ProtocolVersion: str(m, "protocol_version"),
		Method:          str(m, "method"),
		RPCID:           unNullBytes(m["rpc_id"]),
		Params:          unNullBytes(m["params"]),
		ReplyGateway:    str(m, "reply_gateway"),
		ReplyToken:      str(m, "reply_token"),
		ReceivedAt:      ts(m, "received_at"),
	}, nil
}

// EncodeReply frames a ReplyEvent.
func (r *Registry) EncodeReply(e *ReplyEvent) ([]byte, error) {
	status := e.HTTPStatus
	if status == 0 {
		status = 200
	}
	return r.encode("reply_event.avsc", map[string]any{
		"gateway":     e.Gateway,
		"reply_token": e.ReplyToken,
		"event_id":    e.EventID,
		"kind":        string(e.Kind),
		"http_status": int32(status),
		"session_id":  e.SessionID,
		"message":     nullable("bytes", e.Message),
		"produced_at": e.ProducedAt,
	})
}

// DecodeReply parses a framed ReplyEvent.
func (r *Registry) DecodeReply(b []byte) (*ReplyEvent, error) {
	m, err := r.decode("reply_event.avsc", b)
	if err != nil {
		return nil, err
	}
	return &ReplyEvent{
		Gateway:    str(m, "gateway"),
		ReplyToken: str(m, "reply_token"),
		EventID:    str(m, "event_id"),
		Kind:       ReplyKind(str(m, "kind")),
		HTTPStatus: int(i32(m, "http_status")),
		SessionID:  str(m, "session_id"),
		Message:    unNullBytes(m["message"]),
		ProducedAt: ts(m, "produced_at"),
	}, nil
}

// EncodeSession frames a SessionState.
func (r *Registry) EncodeSession(s *SessionState) ([]byte, error) {
	return r.encode("session_state.avsc", map[string]any{
		"session_id":          s.SessionID,
		"state":               string(s.State),
		"protocol_version":    s.ProtocolVersion,
		"client_info":         nullable("bytes", s.ClientInfo),
		"client_capabilities": nullable("bytes", s.ClientCapabilities),
		"principal":           s.Principal,
		"created_at":          s.CreatedAt,
		"last_activity":       s.LastActivity,
		"last_offset":         s.LastOffset,
		"requests":            s.Requests,
		"log_level":           s.LogLevel,
		"subscriptions":       stringsAny(s.Subscriptions),
	})
}

func stringsAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// DecodeSession parses a framed SessionState.
func (r *Registry) DecodeSession(b []byte) (*SessionState, error) {
	m, err := r.decode("session_state.avsc", b)
	if err != nil {
		return nil, err
	}
	return &SessionState{
		SessionID:          str(m, "session_id"),
		State:              SessionLifecycle(str(m, "state")),
		ProtocolVersion:    str(m, "protocol_version"),
		ClientInfo:         unNullBytes(m["client_info"]),
		ClientCapabilities: unNullBytes(m["client_capabilities"]),
		Principal:          str(m, "principal"),
		CreatedAt:          ts(m, "created_at"),
		LastActivity:       ts(m, "last_activity"),
		LastOffset:         i64(m, "last_offset"),
		Requests:           i64(m, "requests"),
		LogLevel:           str(m, "log_level"),
		Subscriptions:      anyStrings(m["subscriptions"]),
	}, nil
}

// EncodeToolCall frames a ToolCallState.
func (r *Registry) EncodeToolCall(s *ToolCallState) ([]byte, error) {
	waiters := make([]any, len(s.Waiters))
	for i, w := range s.Waiters {
		waiters[i] = map[string]any{"gateway": w.Gateway, "reply_token": w.ReplyToken}
	}
	completed := s.CompletedAt
	if completed.IsZero() {
		completed = time.UnixMilli(0)
	}
	return r.encode("toolcall_state.avsc", map[string]any{
		"event_id":          s.EventID,
		"session_id":        s.SessionID,
		"principal":         s.Principal,
		"tool":              s.Tool,
		"status":            string(s.Status),
		"response":          nullable("bytes", s.Response),
		"waiters":           waiters,
		"duplicates":        s.Duplicates,
		"call_offset":       s.CallOffset,
		"accepted_at":       s.AcceptedAt,
		"completed_at":      completed,
		"job":               nullable("bytes", s.Job),
		"idempotent":        s.Idempotent,
		"claim_executor":    s.ClaimExecutor,
		"claim_incarnation": s.ClaimIncarnation,
		"attempts":          s.Attempts,
		"cancel_requested":  s.CancelRequested,
		"task":              s.Task,
		"task_ttl_ms":       s.TaskTTLMs,
		"input_requests":    nullable("bytes", s.InputRequests),
		"fingerprint":       s.Fingerprint,
	})
}

// DecodeToolCall parses a framed ToolCallState.
func (r *Registry) DecodeToolCall(b []byte) (*ToolCallState, error) {
	m, err := r.decode("toolcall_state.avsc", b)
	if err != nil {
		return nil, err
	}
	s := &ToolCallState{
		EventID:    str(m, "event_id"),
		SessionID:  str(m, "session_id"),
		Principal:  str(m, "principal"),
		Tool:       str(m, "tool"),
		Status:     ToolCallStatus(str(m, "status")),
		Response:   unNullBytes(m["response"]),
		Duplicates: i32(m, "duplicates"),
		CallOffset: i64(m, "call_offset"),
		AcceptedAt: ts(m, "accepted_at"),
		// Fields below are absent from values written with toolcall_state.v1.
		Job:              unNullBytes(m["job"]),
		Idempotent:       boolean(m, "idempotent"),
		ClaimExecutor:    str(m, "claim_executor"),
		ClaimIncarnation: str(m, "claim_incarnation"),
		Attempts:         i32(m, "attempts"),
		CancelRequested:  boolean(m, "cancel_requested"),
		Task:             boolean(m, "task"),
		TaskTTLMs:        i64(m, "task_ttl_ms"),
		InputRequests:    unNullBytes(m["input_requests"]),
		Fingerprint:      str(m, "fingerprint"),
	}
	if c := ts(m, "completed_at"); c.UnixMilli() != 0 {
		s.CompletedAt = c
	}
	ws, _ := m["waiters"].([]any)
	for _, w := range ws {
		wm, ok := w.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("decoding toolcall_state: waiter is %T", w)
		}
		s.Waiters = append(s.Waiters, Waiter{Gateway: str(wm, "gateway"), ReplyToken: str(wm, "reply_token")})
	}
	return s, nil
}

// EncodeJob frames a ToolJob.
func (r *Registry) EncodeJob(j *ToolJob) ([]byte, error) {
	return r.encode("tool_job.avsc", map[string]any{
		"event_id":            j.EventID,
		"session_id":          j.SessionID,
		"principal":           j.Principal,
		"tool":                j.Tool,
		"arguments":           nullable("bytes", j.Arguments),
		"progress_token":      nullable("bytes", j.ProgressToken),
		"reply_gateway":       j.ReplyGateway,
		"reply_token":         j.ReplyToken,
		"client_capabilities": nullable("bytes", j.ClientCapabilities),
		"log_level":           j.LogLevel,
		"accepted_at":         j.AcceptedAt,
		"task":                j.Task,
		"task_ttl_ms":         j.TaskTTLMs,
		"input_responses":     nullable("bytes", j.InputResponses),
		"request_state":       nullableString(j.RequestState),
	})
}

func nullableString(s string) any {
	if s == "" {
		return nil
	}
	return goavro.Union("string", s)
}

// DecodeJob parses a framed ToolJob.
func (r *Registry) DecodeJob(b []byte) (*ToolJob, error) {
	m, err := r.decode("tool_job.avsc", b)
	if err != nil {
		return nil, err
	}
	return &ToolJob{
		EventID:            str(m, "event_id"),
		SessionID:          str(m, "session_id"),
		Principal:          str(m, "principal"),
		Tool:               str(m, "tool"),
		Arguments:          unNullBytes(m["arguments"]),
		ProgressToken:      unNullBytes(m["progress_token"]),
		ReplyGateway:       str(m, "reply_gateway"),
		ReplyToken:         str(m, "reply_token"),
		ClientCapabilities: unNullBytes(m["client_capabilities"]),
		LogLevel:           str(m, "log_level"),
		AcceptedAt:         ts(m, "accepted_at"),
		// Absent from values written with tool_job.v1.
		Task:           boolean(m, "task"),
		TaskTTLMs:      i64(m, "task_ttl_ms"),
		InputResponses: unNullBytes(m["input_responses"]),
		RequestState:   string(unNullBytes(m["request_state"])),
	}, nil
}

// EncodeResult frames a ToolResult.
func (r *Registry) EncodeResult(t *ToolResult) ([]byte, error) {
	return r.encode("tool_result.avsc", map[string]any{
		"event_id":    t.EventID,
		"executor":    t.Executor,
		"response":    t.Response,
		"started_at":  t.StartedAt,
		"finished_at": t.FinishedAt,
	})
}

// DecodeResult parses a framed ToolResult.
func (r *Registry) DecodeResult(b []byte) (*ToolResult, error) {
	m, err := r.decode("tool_result.avsc", b)
	if err != nil {
		return nil, err
	}
	resp, _ := m["response"].([]byte)
	return &ToolResult{
		EventID:    str(m, "event_id"),
		Executor:   str(m, "executor"),
		Response:   resp,
		StartedAt:  ts(m, "started_at"),
		FinishedAt: ts(m, "finished_at"),
	}, nil
}

// anyStrings reads an Avro array of strings; absent (older writer schema)
// is nil.
func anyStrings(v any) []string {
	xs, _ := v.([]any)
	if len(xs) == 0 {
		return nil
	}
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
