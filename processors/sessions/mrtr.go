package sessions

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors/mrtr"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/tools"
)

// 2026-07-28 multi round-trip requests (processors/mrtr): a tools/call or
// prompts/get that answers an earlier input_required result carries
// inputResponses and the requestState handed out with it. Both are checked
// here, before anything runs: a malformed answer or a state that fails
// verification (tampered, expired, another caller's or another request's)
// is answered -32602 at once.

func (env Env) states() *mrtr.Signer {
	if env.States != nil {
		return env.States
	}
	return mrtr.NewSigner(nil)
}

func retryError(err error) *jsonrpc.Error {
	if errors.Is(err, mrtr.ErrBadState) {
		return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "requestState failed verification")
	}
	return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid input responses: %v", err)
}

// attachRetry puts a stateless tools/call's answers on its job, for the
// executor to run the tool against (it verifies the state again).
func attachRetry(env Env, ev *schemas.RequestEvent, job *schemas.ToolJob) *jsonrpc.Error {
	r, err := mrtr.ParseRetry(ev.Params)
	if err != nil {
		return retryError(err)
	}
	if !r.Present() {
		return nil
	}
	if r.State != "" {
		o := mrtr.Origin{Principal: ev.Principal, Method: "tools/call", Name: job.Tool, Arguments: job.Arguments}
		if _, _, err := env.states().Open(o, r.State); err != nil {
			return retryError(err)
		}
	}
	job.InputResponses, job.RequestState = r.RawResponses, r.State
	return nil
}

// promptRound is one run of a prompt that may ask the client for input.
type promptRound struct {
	origin mrtr.Origin
	in     *tools.Inputs
	round  int
}

// startPromptRound prepares ctx for a stateless prompts/get: the client's
// declared capabilities, and the answers it sent, which the prompt reaches
// through tools.Ask. A session's prompts/get gets no requester: the
// processor cannot wait for a client inside its partition loop.
func startPromptRound(ctx context.Context, env Env, ev *schemas.RequestEvent, name string, args json.RawMessage) (context.Context, *promptRound, *jsonrpc.Error) {
	r, err := mrtr.ParseRetry(ev.Params)
	if err != nil {
		return ctx, nil, retryError(err)
	}
	pr := &promptRound{origin: mrtr.Origin{Principal: ev.Principal, Method: "prompts/get", Name: name, Arguments: args}}
	var fromState map[string]json.RawMessage
	if r.State != "" {
		if pr.round, fromState, err = env.states().Open(pr.origin, r.State); err != nil {
			return ctx, nil, retryError(err)
		}
	}
	pr.in = tools.NewInputs(mrtr.Given(fromState, r.Responses))
	var p struct {
		Meta struct {
			Caps json.RawMessage `json:"io.modelcontextprotocol/clientCapabilities"`
		} `json:"_meta"`
	}
	_ = json.Unmarshal(orEmpty(ev.Params), &p)
	ctx = tools.WithClientCapabilities(ctx, nonNull(p.Meta.Caps))
	return tools.WithRequester(ctx, pr.in), pr, nil
}

// inputRequired is the input_required result of a prompt that asked for
// input it does not have yet; ok is false for any other error.
func (pr *promptRound) inputRequired(env Env, err error) (map[string]any, *jsonrpc.Error, bool) {
	var ir *tools.InputRequiredError
	if pr == nil || !errors.As(err, &ir) || len(ir.Requests) == 0 {
		return nil, nil, false
	}
	state, serr := env.states().Seal(pr.origin, pr.round+1, pr.in.Answered())
	if serr != nil {
		return nil, internal("seal requestState", serr), true
	}
	return mrtr.InputRequired(ir.Requests, state), nil, true
}
