package processors

import (
	"fmt"

	"github.com/lovoo/goka"
	"github.com/mcpstream/mcpstream/schemas"
)

// Codecs adapts the schema registry to goka's codec interface, one codec per
// record type, so a value of the wrong type fails loudly at encode time.
type Codecs struct {
	Request  goka.Codec
	Reply    goka.Codec
	Session  goka.Codec
	ToolCall goka.Codec
	Job      goka.Codec
	Result   goka.Codec
	Control  goka.Codec
	Command  goka.Codec
	Beat     goka.Codec
	// ControlOrResult reads the tool-controls topic, where executors'
	// results travel with claims and orphan reports: one ordered stream per
	// call, so a claim can never overtake the result before it.
	ControlOrResult goka.Codec
}

// NewCodecs builds the codecs over r.
func NewCodecs(r *schemas.Registry) Codecs {
	return Codecs{
		Request:         codec[schemas.RequestEvent]{r.EncodeRequest, r.DecodeRequest},
		Reply:           codec[schemas.ReplyEvent]{r.EncodeReply, r.DecodeReply},
		Session:         codec[schemas.SessionState]{r.EncodeSession, r.DecodeSession},
		ToolCall:        codec[schemas.ToolCallState]{r.EncodeToolCall, r.DecodeToolCall},
		Job:             codec[schemas.ToolJob]{r.EncodeJob, r.DecodeJob},
		Result:          codec[schemas.ToolResult]{r.EncodeResult, r.DecodeResult},
		Control:         codec[schemas.ToolControl]{r.EncodeControl, r.DecodeControl},
		Command:         codec[schemas.ExecutorCommand]{r.EncodeCommand, r.DecodeCommand},
		Beat:            codec[schemas.ExecutorBeat]{r.EncodeBeat, r.DecodeBeat},
		ControlOrResult: controlOrResult{r},
	}
}

type codec[T any] struct {
	enc func(*T) ([]byte, error)
	dec func([]byte) (*T, error)
}

func (c codec[T]) Encode(v any) ([]byte, error) {
	t, ok := v.(*T)
	if !ok {
		var zero T
		return nil, fmt.Errorf("codec for %T got %T", &zero, v)
	}
	return c.enc(t)
}

func (c codec[T]) Decode(b []byte) (any, error) { return c.dec(b) }

// ParamHeadersMeta is where the gateway records a tools/call's Mcp-Param-*
// headers (SEP-2243), decoded, inside params._meta, for the sessions
// processor to check against the tool's x-mcp-header arguments (the gateway
// does not know the tools). Keys are the header suffixes in lower case.
const ParamHeadersMeta = "io.mcpstream/paramHeaders"

// Protocol versions the platform speaks.
const (
	Version20251125 = "2025-11-25"
	Version20260728 = "2026-07-28"
)

// StatefulVersions are the session-based revisions accepted at initialize,
// newest first: the newest is offered when a client asks for one we lack.
var StatefulVersions = []string{Version20251125, "2025-06-18", "2025-03-26"}

// StatelessVersions are the per-request-metadata revisions.
var StatelessVersions = []string{Version20260728}

// ServerInfo identifies the platform to clients.
type ServerInfo struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Title        string `json:"title,omitempty"`
	Instructions string `json:"-"`
}

// DefaultServerInfo is used when a config leaves ServerInfo empty.
var DefaultServerInfo = ServerInfo{Name: "mcpstream", Title: "mcpstream", Version: "0.1.0"}

// LogLevels are the syslog levels of notifications/message, lowest first.
var LogLevels = []string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

// ValidLogLevel reports whether level is one of LogLevels.
func ValidLogLevel(level string) bool { return LogRank(level) >= 0 }

// LogRank is level's position in LogLevels, or -1.
func LogRank(level string) int {
	for i, l := range LogLevels {
		if l == level {
			return i
		}
	}
	return -1
}

type controlOrResult struct{ r *schemas.Registry }

func (c controlOrResult) Encode(v any) ([]byte, error) {
	switch t := v.(type) {
	case *schemas.ToolControl:
		return c.r.EncodeControl(t)
	case *schemas.ToolResult:
		return c.r.EncodeResult(t)
	}
	return nil, fmt.Errorf("tool-controls codec got %T", v)
}

func (c controlOrResult) Decode(b []byte) (any, error) {
	file, err := c.r.FileOf(b)
	if err != nil {
		return nil, err
	}
	if file == "tool_result.avsc" {
		return c.r.DecodeResult(b)
	}
	return c.r.DecodeControl(b)
}
