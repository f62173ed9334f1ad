package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// A tool may need something from the client mid-call: an LLM completion
// (sampling), an answer from the user (elicitation), the client's roots.
// It asks through Ask, and the platform delivers the question the way the
// call's revision allows: in a 2025-11-25 session as a JSON-RPC request on
// the call's stream, answered by the client's response; in a 2026-07-28
// call by ending the call with an input_required result and running the
// tool again when the client retries with the answers (multi round-trip
// requests). The tool's code is the same for both: it asks, and gets the
// answers or an error to return as is.

// Methods a tool may send to the client.
const (
	MethodCreateMessage = "sampling/createMessage"
	MethodElicit        = "elicitation/create"
	MethodListRoots     = "roots/list"
)

// InputRequest is one question for the client.
type InputRequest struct {
	// Key names the request among those of one call: it is the
	// inputRequests key in 2026-07-28, where the answer comes back under
	// it on the retry. It must be the same on every run of the call.
	Key string
	// Method is MethodCreateMessage, MethodElicit or MethodListRoots.
	Method string
	// Params are the request's params (marshalled to JSON).
	Params any
}

// Requester is implemented by the Notifier an executor passes to a tool
// when the platform can ask the client something for this call.
type Requester interface {
	// Request asks every request and returns the client's results in the
	// same order. In a 2026-07-28 call that still lacks answers it returns
	// an *InputRequiredError; the tool must return that error (wrapped or
	// not) so the call ends with an input_required result.
	Request(ctx context.Context, reqs ...InputRequest) ([]json.RawMessage, error)
}

// ErrNoRequester means the client cannot be asked anything in this call.
var ErrNoRequester = errors.New("the client cannot be asked for input in this call")

type requesterKey struct{}

// WithRequester attaches r to ctx, for code that gets no Notifier (a
// prompt provider's GetPrompt).
func WithRequester(ctx context.Context, r Requester) context.Context {
	return context.WithValue(ctx, requesterKey{}, r)
}

// Ask sends reqs to the client through n if it is a Requester, else
// through the Requester attached to ctx, and returns their results in
// order. Each request needs the client capability of its method (see
// RequiredCapability); one the client did not declare fails with a
// MissingRequiredClientCapability *RPCError before anything is sent.
func Ask(ctx context.Context, n Notifier, reqs ...InputRequest) ([]json.RawMessage, error) {
	for _, r := range reqs {
		if err := checkInputRequest(ctx, r); err != nil {
			return nil, err
		}
	}
	if r, ok := n.(Requester); ok {
		return r.Request(ctx, reqs...)
	}
	if r, ok := ctx.Value(requesterKey{}).(Requester); ok && r != nil {
		return r.Request(ctx, reqs...)
	}
	return nil, ErrNoRequester
}

func checkInputRequest(ctx context.Context, r InputRequest) error {
	capability := RequiredCapability(r.Method)
	if capability == "" {
		return &ArgumentError{Msg: fmt.Sprintf("cannot ask the client %q", r.Method)}
	}
	if r.Key == "" {
		return &ArgumentError{Msg: fmt.Sprintf("input request %s has no key", r.Method)}
	}
	// The spec forbids sending a request the client did not declare it
	// can answer, in both revisions.
	if !HasClientCapability(ctx, capability) {
		return NewMissingCapabilityError(fmt.Sprintf("Missing required client capability: %s (for %s)", capability, r.Method),
			map[string]any{capability: map[string]any{}})
	}
	return nil
}

// RequiredCapability is the client capability a client request method
// needs, or "" for a method a tool cannot send.
func RequiredCapability(method string) string {
	switch method {
	case MethodCreateMessage:
		return "sampling"
	case MethodElicit:
		return "elicitation"
	case MethodListRoots:
		return "roots"
	}
	return ""
}

// InputRequiredError ends a 2026-07-28 call that needs answers from the
// client: the platform answers the call with an input_required result
// listing Requests, and runs the tool again when the client retries.
type InputRequiredError struct {
	Requests []InputRequest
}

func (e *InputRequiredError) Error() string {
	keys := make([]string, len(e.Requests))
	for i, r := range e.Requests {
		keys[i] = r.Key
	}
	return fmt.Sprintf("input required from the client: %v", keys)
}

// ClientError is a JSON-RPC error the client answered a request with.
type ClientError struct {
	Method  string
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *ClientError) Error() string {
	return fmt.Sprintf("client answered %s with error %d: %s", e.Method, e.Code, e.Message)
}

// CheckInputResponse checks that a client's result has the shape of its
// method's result (ElicitResult, CreateMessageResult, ListRootsResult), so
// tools can read it without guarding every field.
func CheckInputResponse(method string, raw json.RawMessage) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return fmt.Errorf("%s result is not an object", method)
	}
	switch method {
	case MethodElicit:
		var action string
		if json.Unmarshal(obj["action"], &action) != nil || (action != "accept" && action != "decline" && action != "cancel") {
			return fmt.Errorf("%s result needs action accept, decline or cancel", method)
		}
	case MethodCreateMessage:
		if len(obj["role"]) == 0 || len(obj["content"]) == 0 {
			return fmt.Errorf("%s result needs role and content", method)
		}
	case MethodListRoots:
		var roots []json.RawMessage
		if json.Unmarshal(obj["roots"], &roots) != nil || roots == nil {
			return fmt.Errorf("%s result needs a roots array", method)
		}
	}
	return nil
}

// Inputs answers requests from what a 2026-07-28 client sent with its
// retry (inputResponses, plus the answers of earlier rounds the platform
// carried in requestState). Requests it has no answer for end the run with
// an *InputRequiredError. It is the Requester of stateless calls.
type Inputs struct {
	mu    sync.Mutex
	given map[string]json.RawMessage
	used  map[string]json.RawMessage
}

// NewInputs answers from given (key -> client result).
func NewInputs(given map[string]json.RawMessage) *Inputs {
	return &Inputs{given: given, used: map[string]json.RawMessage{}}
}

// Request implements Requester: all answers, or an *InputRequiredError
// naming every request still unanswered (a client can then answer them in
// one round). An answer of the wrong shape is an invalid-params error: the
// client sent something that is not a result of the method.
func (in *Inputs) Request(_ context.Context, reqs ...InputRequest) ([]json.RawMessage, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]json.RawMessage, len(reqs))
	var missing []InputRequest
	for i, r := range reqs {
		raw, ok := in.given[r.Key]
		if !ok {
			missing = append(missing, r)
			continue
		}
		if err := CheckInputResponse(r.Method, raw); err != nil {
			return nil, &RPCError{Code: codeInvalidParams, Message: fmt.Sprintf("inputResponses[%q]: %v", r.Key, err)}
		}
		in.used[r.Key] = raw
		out[i] = raw
	}
	if len(missing) > 0 {
		return nil, &InputRequiredError{Requests: missing}
	}
	return out, nil
}

// Answered returns the answers the run has used so far: what the next
// round's requestState must carry, since a client retrying sends only the
// answers of the latest round.
func (in *Inputs) Answered() map[string]json.RawMessage {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(map[string]json.RawMessage, len(in.used))
	for k, v := range in.used {
		out[k] = v
	}
	return out
}

// codeInvalidParams is JSON-RPC's invalid-params code: an answer of the
// wrong shape is a malformed request parameter of the retry.
const codeInvalidParams = -32602
