package upstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mcpstream/mcpstream/tools"
)

var (
	// ErrCircuitOpen: the upstream failed repeatedly and calls fail fast
	// until a probe succeeds.
	ErrCircuitOpen = errors.New("circuit open")
	// ErrPoolExhausted: every upstream session of the pool was busy for the
	// whole acquire timeout.
	ErrPoolExhausted = errors.New("all upstream sessions busy")
	// ErrTimeout: the upstream did not answer within the deadline.
	ErrTimeout = errors.New("upstream did not answer in time")
	// ErrClosed: the provider was closed.
	ErrClosed = errors.New("upstream provider closed")
)

// UnavailableError says a call could not be made, or got no answer, because
// of the upstream or the way to it: the circuit is open, no session was free,
// the process or connection failed, or the deadline passed. It wraps one of
// the sentinels above or the underlying transport error.
//
// Why an error and not an isError result or a JSON-RPC error: the Provider
// contract reserves non-nil errors for "the call could not be made", and the
// executor renders any error that is not ErrUnknownTool, *ArgumentError or
// *RPCError as an isError result carrying the message. So the client (and
// the model behind it) reads "upstream "x" unavailable: circuit open ...;
// next probe in 12s" as a tool failure it can react to, which the MCP spec
// asks for external-system failures, instead of a JSON-RPC error that most
// client SDKs raise as an exception that ends the agent's turn. Go callers
// still tell it apart with errors.As, e.g. for metrics, or to decide not to
// store a Retriable failure as the final answer of an idempotent request.
type UnavailableError struct {
	Upstream string
	// Op is what was attempted: "call", "list" or "connect".
	Op string
	// RetryAfter is how long the circuit stays open; 0 when unknown.
	RetryAfter time.Duration
	Err        error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("upstream %q unavailable (%s): %v", e.Upstream, e.Op, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Retriable reports whether the same call may succeed later. It always may:
// none of these failures says anything about the call itself.
func (e *UnavailableError) Retriable() bool { return true }

// unknownToolRE recognises "no such tool" among -32602 errors. JSON-RPC has
// no dedicated code for it and servers word it differently: the go-sdk says
// `unknown tool "x"`, the TypeScript SDK `Tool x not found`, Python
// `Unknown tool: x`.
var unknownToolRE = regexp.MustCompile(`(?i)unknown tool|tool\b.*\bnot found|no such tool`)

// mapRPCError turns a JSON-RPC error answered by the upstream into what the
// platform expects from a provider.
//
// Codes are not all passed through: mcpstream gives some codes of the
// implementation-defined range meaning of its own (-32001 unknown session,
// -32002 reply timeout, -32020..-32022 header and version rules, with HTTP
// statuses attached), and an upstream's -32001 must not tell our client its
// mcpstream session is gone. So only the standard codes pass unchanged;
// anything else becomes -32603 with the upstream's code and data kept in
// "data".
func mapRPCError(upstream string, e *jsonrpc.Error) error {
	switch e.Code {
	case jsonrpc.CodeInvalidParams:
		if unknownToolRE.MatchString(e.Message) {
			return fmt.Errorf("upstream %q: %w: %s", upstream, tools.ErrUnknownTool, e.Message)
		}
		return &tools.ArgumentError{Msg: fmt.Sprintf("upstream %q: %s", upstream, e.Message)}
	case jsonrpc.CodeParseError, jsonrpc.CodeInvalidRequest, jsonrpc.CodeMethodNotFound, jsonrpc.CodeInternalError:
		return &tools.RPCError{Code: int(e.Code), Message: fmt.Sprintf("upstream %q: %s", upstream, e.Message), Data: json.RawMessage(e.Data)}
	default:
		data, _ := json.Marshal(struct {
			Upstream string          `json:"upstream"`
			Code     int64           `json:"code"`
			Data     json.RawMessage `json:"data,omitempty"`
		}{upstream, e.Code, json.RawMessage(e.Data)})
		return &tools.RPCError{Code: jsonrpc.CodeInternalError,
			Message: fmt.Sprintf("upstream %q: error %d: %s", upstream, e.Code, e.Message), Data: data}
	}
}
