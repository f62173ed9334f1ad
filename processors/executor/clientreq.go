package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors/mrtr"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools"
)

// Requests a running tool sends to its client (tools.Ask).
//
// In a 2025-11-25 session the request travels like a notification, on the
// call's reply stream, with a JSON-RPC id naming this executor incarnation
// (streams.ClientRequestID). The client POSTs its response to any gateway,
// which forwards it as a CLIENT_RESPONSE command to this executor's
// partition of executor-commands; readCommands hands it here, and the
// waiting tool goes on. The gateway waits for this executor's verdict, so
// the client learns at once when its response was for an unknown, expired
// or foreign request.
//
// A 2026-07-28 call cannot carry requests to the client: the tool runs
// against what the client sent with the call (inputResponses, and the
// answers of earlier rounds in the signed requestState), and a request
// still unanswered ends the call with an input_required result. The client
// retries with the answers, and the tool runs again from the start.

var _ tools.Requester = (*notifier)(nil)

// clientRequests are this incarnation's requests awaiting a client's
// response. The zero value is ready to use.
type clientRequests struct {
	mu      sync.Mutex
	seq     uint64
	pending map[uint64]*pendingRequest

	signerOnce sync.Once
	signer     *mrtr.Signer
}

type pendingRequest struct {
	sessionID string
	principal string
	eventID   string
	method    string
	// answer receives the client's whole JSON-RPC response, once.
	answer chan []byte
}

func (cr *clientRequests) add(job *schemas.ToolJob, method string) (uint64, *pendingRequest) {
	p := &pendingRequest{sessionID: job.SessionID, principal: job.Principal, eventID: job.EventID, method: method,
		answer: make(chan []byte, 1)}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.pending == nil {
		cr.pending = map[uint64]*pendingRequest{}
	}
	cr.seq++
	cr.pending[cr.seq] = p
	return cr.seq, p
}

func (cr *clientRequests) remove(seq uint64) {
	cr.mu.Lock()
	delete(cr.pending, seq)
	cr.mu.Unlock()
}

func (cr *clientRequests) get(seq uint64) *pendingRequest {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.pending[seq]
}

// states signs and verifies requestState with the deployment's key.
func (e *Executor) states() *mrtr.Signer {
	e.creq.signerOnce.Do(func() { e.creq.signer = mrtr.NewSigner(e.cfg.StateKey) })
	return e.creq.signer
}

// callInputs is a stateless call's view of its client's answers, built on
// first use from the job.
type callInputs struct {
	once  sync.Once
	in    *tools.Inputs
	round int
	err   error
}

func (n *notifier) origin() mrtr.Origin {
	return mrtr.Origin{Principal: n.job.Principal, Method: "tools/call", Name: n.job.Tool, Arguments: n.job.Arguments}
}

// inputs reads the job's inputResponses and verifies its requestState. The
// sessions processor checked both before dispatching the call; checking
// again here keeps the executor from trusting what it did not verify.
func (n *notifier) inputs() (*tools.Inputs, error) {
	ci := &n.mrtr
	ci.once.Do(func() {
		var fromState, responses map[string]json.RawMessage
		if n.job.RequestState != "" {
			ci.round, fromState, ci.err = n.e.states().Open(n.origin(), n.job.RequestState)
			if ci.err != nil {
				ci.err = &tools.RPCError{Code: jsonrpc.CodeInvalidParams, Message: "requestState failed verification"}
				return
			}
		}
		if len(n.job.InputResponses) > 0 {
			if err := json.Unmarshal(n.job.InputResponses, &responses); err != nil {
				ci.err = &tools.RPCError{Code: jsonrpc.CodeInvalidParams, Message: "inputResponses must be an object"}
				return
			}
		}
		ci.in = tools.NewInputs(mrtr.Given(fromState, responses))
	})
	return ci.in, ci.err
}

// Request implements tools.Requester.
func (n *notifier) Request(ctx context.Context, reqs ...tools.InputRequest) ([]json.RawMessage, error) {
	if n.isTask() {
		return n.taskInput(ctx, reqs) // taskinput.go
	}
	if n.job.SessionID == "" {
		in, err := n.inputs()
		if err != nil {
			return nil, err
		}
		return in.Request(ctx, reqs...)
	}
	if n.job.ReplyGateway == "" {
		return nil, tools.ErrNoRequester
	}
	out := make([]json.RawMessage, len(reqs))
	for i, r := range reqs {
		res, err := n.e.askClient(ctx, n, r)
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}

// inputRequired turns a tool's *tools.InputRequiredError into the call's
// input_required result, with a state carrying every answer the run used.
func (n *notifier) inputRequired(err error) ([]byte, bool) {
	var ir *tools.InputRequiredError
	if !errors.As(err, &ir) || n.mrtr.in == nil || len(ir.Requests) == 0 {
		return nil, false
	}
	state, serr := n.e.states().Seal(n.origin(), n.mrtr.round+1, n.mrtr.in.Answered())
	if serr != nil {
		return jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInternalError, "sealing requestState: %v", serr)), true
	}
	body, merr := jsonrpc.ResultBody(mrtr.InputRequired(ir.Requests, state))
	if merr != nil {
		return jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInternalError, "encoding input_required result: %v", merr)), true
	}
	return body, true
}

// askClient sends one request on the call's stream and waits for the
// client's response, or for the tool's context to end.
func (e *Executor) askClient(ctx context.Context, n *notifier, r tools.InputRequest) (json.RawMessage, error) {
	seq, p := e.creq.add(n.job, r.Method)
	defer e.creq.remove(seq)
	id := streams.ClientRequestID(e.cfg.ID, e.inc, seq)
	params := r.Params
	if params == nil {
		params = map[string]any{}
	}
	msg, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": r.Method, "params": params})
	if err != nil {
		return nil, fmt.Errorf("encoding %s request: %w", r.Method, err)
	}
	val, err := e.reg.EncodeReply(&schemas.ReplyEvent{Gateway: n.job.ReplyGateway, ReplyToken: n.job.ReplyToken,
		EventID: n.job.EventID, Kind: schemas.ReplyNotification, HTTPStatus: 200, SessionID: n.job.SessionID,
		Message: msg, ProducedAt: time.Now()})
	if err != nil {
		return nil, fmt.Errorf("encoding %s reply: %w", r.Method, err)
	}
	// Synchronously: the client cannot answer what is not in the log, and
	// a failure here is the tool's to see. The same producer and key as the
	// call's notifications keep it behind those already sent.
	rec := &kgo.Record{Topic: e.cfg.Streams.Topics.Replies(), Key: []byte(n.job.ReplyGateway), Value: val}
	if err := e.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return nil, fmt.Errorf("sending %s to the client: %w", r.Method, err)
	}
	select {
	case <-ctx.Done():
		// The client may still be working on it (a person filling a form):
		// tell it to stop. Best effort; the stream may be gone.
		_ = n.send(context.WithoutCancel(ctx), "notifications/cancelled",
			map[string]any{"requestId": id, "reason": "the tool call ended"})
		return nil, fmt.Errorf("waiting for the client's answer to %s: %w", r.Method, ctx.Err())
	case raw := <-p.answer:
		return clientResult(r.Method, raw)
	}
}

// clientResult reads a client's JSON-RPC response to a request.
func clientResult(method string, raw []byte) (json.RawMessage, error) {
	var resp struct {
		Result json.RawMessage    `json:"result"`
		Error  *tools.ClientError `json:"error"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("reading the client's response to %s: %w", method, err)
	}
	if resp.Error != nil {
		resp.Error.Method = method
		return nil, resp.Error
	}
	if err := tools.CheckInputResponse(method, resp.Result); err != nil {
		return nil, fmt.Errorf("the client's response to %s: %w", method, err)
	}
	return resp.Result, nil
}

// clientResponse takes a CLIENT_RESPONSE command addressed to this
// executor id (any incarnation) and acknowledges it to the gateway that
// forwarded it. Only a response posted in the session, and by the
// principal, the request was sent to is taken; to anyone else a pending
// request looks exactly like an unknown one.
func (e *Executor) clientResponse(ctx context.Context, cmd *schemas.ExecutorCommand) {
	reject := func(why string) {
		e.log.Debug("refusing client response", "session", cmd.SessionID, "reason", why)
		e.ackClientResponse(ctx, cmd, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "%s", why))
	}
	var msg struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(cmd.Message, &msg)
	target, ok := streams.ParseClientRequestID(msg.ID)
	switch {
	case !ok:
		reject("malformed id: not a request this server sent")
		return
	case cmd.Incarnation != e.inc || target.Incarnation != e.inc:
		reject(fmt.Sprintf("unknown or expired request id %q: the server process that sent it has restarted", msg.ID))
		return
	}
	p := e.creq.get(target.Seq)
	if p == nil || p.sessionID != cmd.SessionID || p.principal != cmd.Principal {
		reject(fmt.Sprintf("unknown or expired request id %q", msg.ID))
		return
	}
	select {
	case p.answer <- cmd.Message:
		e.ackClientResponse(ctx, cmd, nil)
	default:
		reject(fmt.Sprintf("request %q was already answered", msg.ID))
	}
}

// ackClientResponse tells the gateway holding the client's POST whether
// its response was taken (202) or refused (400 with a JSON-RPC error).
func (e *Executor) ackClientResponse(ctx context.Context, cmd *schemas.ExecutorCommand, refusal *jsonrpc.Error) {
	if cmd.ReplyGateway == "" {
		return
	}
	rep := &schemas.ReplyEvent{Gateway: cmd.ReplyGateway, ReplyToken: cmd.ReplyToken, Kind: schemas.ReplyAccepted,
		HTTPStatus: 202, SessionID: cmd.SessionID, ProducedAt: time.Now()}
	if refusal != nil {
		rep.Kind, rep.HTTPStatus, rep.Message = schemas.ReplyResponse, 400, jsonrpc.ErrorBody(refusal)
	}
	val, err := e.reg.EncodeReply(rep)
	if err != nil {
		e.log.Error("encoding client response acknowledgement", "err", err)
		return
	}
	e.cl.Produce(context.WithoutCancel(ctx), &kgo.Record{Topic: e.cfg.Streams.Topics.Replies(), Key: []byte(cmd.ReplyGateway), Value: val},
		func(_ *kgo.Record, err error) {
			if err != nil {
				e.log.Warn("acknowledging client response", "gateway", cmd.ReplyGateway, "err", err)
			}
		})
}
