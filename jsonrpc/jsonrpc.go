package jsonrpc

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Error codes. MCP reserves -32000..-32099 for its own.
const (
	CodeParseError      = -32700
	CodeInvalidRequest  = -32600
	CodeMethodNotFound  = -32601
	CodeInvalidParams   = -32602
	CodeInternalError   = -32603
	CodeSessionNotFound = -32001 // mcpstream: unknown or ended session (HTTP 404)
	CodeTimeout         = -32002 // mcpstream: no reply within the gateway's deadline (HTTP 504)
	// Codes of our own live outside -32000..-32099: 2026-07-28 reserves
	// -32020..-32099 for the specification and retires -32000..-32019, and
	// SDKs use that range internally (the go-sdk reads -32003 and -32004
	// as "connection closing").
	CodeCallInterrupted            = -31003 // mcpstream: a non-idempotent call's executor died mid-call; not retried
	CodeRequestCancelled           = -31004 // mcpstream: the client cancelled the call (notifications/cancelled)
	CodeHeaderMismatch             = -32020 // MCP 2026-07-28
	CodeMissingClientCapability    = -32021
	CodeUnsupportedProtocolVersion = -32022
)

// Error is a JSON-RPC error object.
type Error struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("jsonrpc error %d: %s", e.Code, e.Message) }

// Errorf builds an Error.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithData attaches data to an error.
func (e *Error) WithData(v any) *Error {
	b, err := json.Marshal(v)
	if err == nil {
		e.Data = b
	}
	return e
}

// ErrorBody is the id-less body of an error response.
func ErrorBody(e *Error) []byte {
	b, err := json.Marshal(struct {
		Error *Error `json:"error"`
	}{e})
	if err != nil {
		// Error holds only strings, ints and valid raw JSON.
		panic(err)
	}
	return b
}

// ResultBody is the id-less body of a success response.
func ResultBody(result any) ([]byte, error) {
	r, err := json.Marshal(result)
	if err != nil {
		return nil, fmt.Errorf("encoding result: %w", err)
	}
	out := make([]byte, 0, len(r)+11)
	out = append(out, `{"result":`...)
	out = append(out, r...)
	return append(out, '}'), nil
}

// Compose turns an id-less body into a complete JSON-RPC response with the
// given id (JSON text; nil or empty means null, used for errors about
// requests whose id could not be read).
func Compose(id json.RawMessage, body []byte) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	body = bytes.TrimSpace(body)
	out := make([]byte, 0, len(body)+len(id)+24)
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, id...)
	if len(body) > 2 {
		out = append(out, ',')
		out = append(out, body[1:]...)
	} else {
		out = append(out, '}')
	}
	return out
}

// IsError reports whether an id-less body is an error response, and its code.
func IsError(body []byte) (int, bool) {
	var probe struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(body, &probe) != nil || probe.Error == nil {
		return 0, false
	}
	return probe.Error.Code, true
}
