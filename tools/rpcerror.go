package tools

import (
	"encoding/json"
	"fmt"
)

// JSON-RPC error codes a provider may need to return verbatim. The gateway
// maps them to HTTP statuses (see ops/conformance/SCENARIOS.md): on the
// 2026-07-28 wire these three are answered with 400 Bad Request.
const (
	// CodeHeaderMismatch: HTTP headers disagree with the request body.
	CodeHeaderMismatch = -32020
	// CodeMissingRequiredClientCapability: the request needs a client
	// capability the client did not declare for this request.
	CodeMissingRequiredClientCapability = -32021
	// CodeUnsupportedProtocolVersion: the requested protocol version is not served.
	CodeUnsupportedProtocolVersion = -32022
)

// RPCError is a JSON-RPC error that a provider wants sent to the client as
// is, instead of a tool result. Use it only for protocol-level failures the
// spec defines (such as a missing client capability); failures in the tool's
// own domain belong in a Result with IsError set.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("json-rpc error %d: %s", e.Code, e.Message)
}

// NewMissingCapabilityError builds the MissingRequiredClientCapabilityError
// (-32021). required is a ClientCapabilities object keyed by the missing
// capability, e.g. {"sampling": {}}: the conformance suite rejects an array
// of names here.
func NewMissingCapabilityError(message string, required map[string]any) *RPCError {
	data, err := json.Marshal(struct {
		RequiredCapabilities map[string]any `json:"requiredCapabilities"`
	}{required})
	if err != nil {
		// required comes from Go literals in providers; a value that cannot
		// be marshalled is a programming error worth surfacing loudly.
		panic(fmt.Sprintf("tools: marshal required capabilities: %v", err))
	}
	return &RPCError{Code: CodeMissingRequiredClientCapability, Message: message, Data: data}
}
