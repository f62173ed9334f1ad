package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors"
	"github.com/mcpstream/mcpstream/processors/mrtr"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

// Responses to requests a running tool sent its client (2025-11-25
// sampling, elicitation, roots; processors/executor/clientreq.go). The
// request's id names the executor incarnation waiting for the answer, so
// any gateway forwards the response straight to that executor, as a
// CLIENT_RESPONSE command on its partition of executor-commands, and waits
// for its verdict: 202 when the response was taken, 400 with the reason
// when it was not (unknown or expired id, another session's request).

// ClientResponseAckTimeout bounds the wait for the executor's verdict. An
// executor that does not answer is gone (its calls are reported orphaned
// by the others) or overloaded.
const ClientResponseAckTimeout = 5 * time.Second

// clientRequestID returns the id of a JSON-RPC response if it answers a
// request a tool sent (a string id of ours).
func clientRequestID(id json.RawMessage) (string, bool) {
	var s string
	if len(id) == 0 || id[0] != '"' || json.Unmarshal(id, &s) != nil {
		return "", false
	}
	return s, streams.IsClientRequestID(s)
}

func (g *Gateway) serveClientResponse(w http.ResponseWriter, r *http.Request, ev *schemas.RequestEvent, id string, body []byte) string {
	bad := func(status int, format string, args ...any) string {
		// A response is not a request: the error carries no id.
		writeError(w, status, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, format, args...))
		return "rejected"
	}
	if ev.ProtocolVersion == processors.Version20260728 {
		return bad(http.StatusBadRequest, "2026-07-28 has no server-to-client requests to respond to (id %q)", id)
	}
	if ev.SessionID == "" || !validSessionID(ev.SessionID) {
		return bad(http.StatusBadRequest, "a response to request %q needs the Mcp-Session-Id of its session", id)
	}
	target, ok := streams.ParseClientRequestID(id)
	if !ok {
		return bad(http.StatusBadRequest, "unknown request id %q", id)
	}
	if !g.Ready() {
		writeNotReady(w, nil)
		return "unavailable"
	}
	wt := g.register(ev.ReplyToken)
	defer g.unregister(ev.ReplyToken)
	cmd := &schemas.ExecutorCommand{Executor: target.Executor, Incarnation: target.Incarnation, Kind: schemas.CommandClientResponse,
		Message: body, SessionID: ev.SessionID, Principal: ev.Principal, ReplyGateway: g.cfg.ID, ReplyToken: ev.ReplyToken,
		ProducedAt: time.Now()}
	if err := g.produceCommand(r.Context(), cmd); err != nil {
		g.log.Error("client response not accepted", "id", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, nil, jsonrpc.Errorf(jsonrpc.CodeInternalError, "response could not be written to the log; send it again"))
		return "unavailable"
	}
	timer := time.NewTimer(ClientResponseAckTimeout)
	defer timer.Stop()
	for {
		select {
		case <-r.Context().Done():
			return "client_gone"
		case <-timer.C:
			return bad(http.StatusGatewayTimeout, "request %q: the server process that sent it did not take the response within %s (it is gone or overloaded)",
				id, ClientResponseAckTimeout)
		case d := <-wt.ch:
			switch d.rep.Kind {
			case schemas.ReplyAccepted:
				w.WriteHeader(http.StatusAccepted)
				return "ok"
			case schemas.ReplyResponse:
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(d.rep.HTTPStatus)
				w.Write(jsonrpc.Compose(nil, d.rep.Message))
				return outcomeOf(d.rep.HTTPStatus)
			}
		}
	}
}

// refuseClientRequest answers, on the client's behalf, a request a tool
// sent on a call whose client accepted no event stream: the client can
// never see it, and the tool would otherwise wait until its timeout.
func (g *Gateway) refuseClientRequest(ctx context.Context, ev *schemas.RequestEvent, msg []byte) {
	var req struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.Unmarshal(msg, &req) != nil || req.Method == "" {
		return // a notification: dropping it is all a JSON response can do
	}
	id, ok := clientRequestID(req.ID)
	if !ok {
		return
	}
	target, ok := streams.ParseClientRequestID(id)
	if !ok {
		return
	}
	refusal := jsonrpc.Compose(req.ID, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInternalError,
		"the client cannot receive %s: its request accepted no text/event-stream response", req.Method)))
	cmd := &schemas.ExecutorCommand{Executor: target.Executor, Incarnation: target.Incarnation, Kind: schemas.CommandClientResponse,
		Message: refusal, SessionID: ev.SessionID, Principal: ev.Principal, ProducedAt: time.Now()}
	go func() {
		if err := g.produceCommand(context.WithoutCancel(ctx), cmd); err != nil {
			g.log.Warn("refusing a client request on a JSON response", "id", id, "err", err)
		}
	}()
}

func (g *Gateway) produceCommand(ctx context.Context, cmd *schemas.ExecutorCommand) error {
	val, err := g.reg.EncodeCommand(cmd)
	if err != nil {
		return err
	}
	// Keyed by executor id, like the toolcalls processor's commands: the
	// executor reads only the partition its id hashes to.
	return g.cl.Load().ProduceSync(ctx, &kgo.Record{Topic: g.cfg.Streams.Topics.ExecutorCommands(),
		Key: []byte(cmd.Executor), Value: val}).FirstErr()
}

// keyedEventID is the identity of a stateless request with an idempotency
// key. A retry answering an input_required result is a new request even
// with the same key, or the stored input_required result would answer it.
func keyedEventID(principal, key string, params json.RawMessage) string {
	if round := mrtr.RoundIdentity(params); round != nil {
		return streams.KeyedRetryEventID(principal, key, round)
	}
	return streams.KeyedEventID(principal, key)
}
