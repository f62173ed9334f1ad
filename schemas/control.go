package schemas

import (
	"fmt"
	"time"
)

// ToolControlKind says what a ToolControl asks of the toolcalls processor.
type ToolControlKind string

// Control kinds (tool_control.avsc).
const (
	ControlClaim  ToolControlKind = "CLAIM"
	ControlOrphan ToolControlKind = "ORPHAN"
	ControlCancel ToolControlKind = "CANCEL"
	// ControlRelease gives back a granted call whose body never started (an
	// executor shutting down): it can run elsewhere, idempotent or not.
	ControlRelease ToolControlKind = "RELEASE"
	// ControlQuery asks about a call (a task) and wants an answer sent to
	// ReplyGateway.
	ControlQuery ToolControlKind = "QUERY"
	// ControlInput: the holder of a task asks its client for input
	// (Payload: inputRequests), surfaced by tasks/get.
	ControlInput ToolControlKind = "INPUT"
	// ControlEscalate: the holder turns a running call into a task (its
	// caller declared the tasks extension); the caller gets the handle.
	ControlEscalate ToolControlKind = "ESCALATE"
)

// ToolControl is a control event for one call (tool_control.avsc).
type ToolControl struct {
	EventID     string
	Kind        ToolControlKind
	Executor    string
	Incarnation string
	Idempotent  bool
	Reason      string
	ProducedAt  time.Time
	// ReplyGateway, ReplyToken, Principal and Method are set on QUERY
	// (Principal also on CANCEL).
	ReplyGateway string
	ReplyToken   string
	Principal    string
	Method       string
	// Payload is the inputResponses object of tasks/update.
	Payload []byte
	// SessionID scopes a 2025-11-25 task query to its session.
	SessionID string
}

// ExecutorCommandKind is the processor's answer to a claim, or an order.
type ExecutorCommandKind string

// Command kinds (executor_command.avsc).
const (
	CommandGrant    ExecutorCommandKind = "GRANT"
	CommandDrop     ExecutorCommandKind = "DROP"
	CommandConflict ExecutorCommandKind = "CONFLICT"
	CommandCancel   ExecutorCommandKind = "CANCEL"
	// CommandClientResponse carries a client's answer to a request a
	// running tool sent it (2025-11-25 sampling, elicitation, roots).
	CommandClientResponse ExecutorCommandKind = "CLIENT_RESPONSE"
	// CommandTaskInput carries tasks/update answers (Message: key ->
	// response) to the holder of the task.
	CommandTaskInput ExecutorCommandKind = "TASK_INPUT"
)

// ExecutorCommand is addressed to one executor incarnation
// (executor_command.avsc).
type ExecutorCommand struct {
	Executor          string
	Incarnation       string
	EventID           string
	Kind              ExecutorCommandKind
	HolderExecutor    string
	HolderIncarnation string
	Attempt           int32
	ProducedAt        time.Time
	Message           []byte
	// SessionID, Principal, ReplyGateway and ReplyToken come with a
	// CLIENT_RESPONSE: who posted it, and where to acknowledge it (absent
	// from values written with executor_command.v1).
	SessionID    string
	Principal    string
	ReplyGateway string
	ReplyToken   string
}

// ExecutorBeat is an executor's liveness record (executor_beat.avsc).
type ExecutorBeat struct {
	Executor    string
	Incarnation string
	BeatAt      time.Time
	Inflight    []string
	Stopped     bool
}

// EncodeControl frames a ToolControl.
func (r *Registry) EncodeControl(c *ToolControl) ([]byte, error) {
	return r.encode("tool_control.avsc", map[string]any{
		"event_id":      c.EventID,
		"kind":          string(c.Kind),
		"executor":      c.Executor,
		"incarnation":   c.Incarnation,
		"idempotent":    c.Idempotent,
		"reason":        c.Reason,
		"produced_at":   c.ProducedAt,
		"reply_gateway": c.ReplyGateway,
		"reply_token":   c.ReplyToken,
		"principal":     c.Principal,
		"method":        c.Method,
		"payload":       nullable("bytes", c.Payload),
		"session_id":    c.SessionID,
	})
}

// DecodeControl parses a framed ToolControl.
func (r *Registry) DecodeControl(b []byte) (*ToolControl, error) {
	m, err := r.decode("tool_control.avsc", b)
	if err != nil {
		return nil, err
	}
	return &ToolControl{
		EventID:      str(m, "event_id"),
		Kind:         ToolControlKind(str(m, "kind")),
		Executor:     str(m, "executor"),
		Incarnation:  str(m, "incarnation"),
		Idempotent:   boolean(m, "idempotent"),
		Reason:       str(m, "reason"),
		ProducedAt:   ts(m, "produced_at"),
		ReplyGateway: str(m, "reply_gateway"),
		ReplyToken:   str(m, "reply_token"),
		Principal:    str(m, "principal"),
		Method:       str(m, "method"),
		Payload:      unNullBytes(m["payload"]),
		SessionID:    str(m, "session_id"),
	}, nil
}

// EncodeCommand frames an ExecutorCommand.
func (r *Registry) EncodeCommand(c *ExecutorCommand) ([]byte, error) {
	return r.encode("executor_command.avsc", map[string]any{
		"executor":           c.Executor,
		"incarnation":        c.Incarnation,
		"event_id":           c.EventID,
		"kind":               string(c.Kind),
		"holder_executor":    c.HolderExecutor,
		"holder_incarnation": c.HolderIncarnation,
		"attempt":            c.Attempt,
		"produced_at":        c.ProducedAt,
		"message":            nullable("bytes", c.Message),
		"session_id":         c.SessionID,
		"principal":          c.Principal,
		"reply_gateway":      c.ReplyGateway,
		"reply_token":        c.ReplyToken,
	})
}

// DecodeCommand parses a framed ExecutorCommand.
func (r *Registry) DecodeCommand(b []byte) (*ExecutorCommand, error) {
	m, err := r.decode("executor_command.avsc", b)
	if err != nil {
		return nil, err
	}
	return &ExecutorCommand{
		Executor:          str(m, "executor"),
		Incarnation:       str(m, "incarnation"),
		EventID:           str(m, "event_id"),
		Kind:              ExecutorCommandKind(str(m, "kind")),
		HolderExecutor:    str(m, "holder_executor"),
		HolderIncarnation: str(m, "holder_incarnation"),
		Attempt:           i32(m, "attempt"),
		ProducedAt:        ts(m, "produced_at"),
		Message:           unNullBytes(m["message"]),
		SessionID:         str(m, "session_id"),
		Principal:         str(m, "principal"),
		ReplyGateway:      str(m, "reply_gateway"),
		ReplyToken:        str(m, "reply_token"),
	}, nil
}

// EncodeBeat frames an ExecutorBeat.
func (r *Registry) EncodeBeat(b *ExecutorBeat) ([]byte, error) {
	inflight := make([]any, len(b.Inflight))
	for i, id := range b.Inflight {
		inflight[i] = id
	}
	return r.encode("executor_beat.avsc", map[string]any{
		"executor":    b.Executor,
		"incarnation": b.Incarnation,
		"beat_at":     b.BeatAt,
		"inflight":    inflight,
		"stopped":     b.Stopped,
	})
}

// DecodeBeat parses a framed ExecutorBeat.
func (r *Registry) DecodeBeat(b []byte) (*ExecutorBeat, error) {
	m, err := r.decode("executor_beat.avsc", b)
	if err != nil {
		return nil, err
	}
	out := &ExecutorBeat{
		Executor:    str(m, "executor"),
		Incarnation: str(m, "incarnation"),
		BeatAt:      ts(m, "beat_at"),
		Stopped:     boolean(m, "stopped"),
	}
	ids, _ := m["inflight"].([]any)
	for _, v := range ids {
		id, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("decoding executor_beat: inflight item is %T", v)
		}
		out.Inflight = append(out.Inflight, id)
	}
	return out, nil
}
