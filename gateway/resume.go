package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

// serveResume answers GET with Last-Event-ID (2025-11-25 resumability): it
// replays the rest of a request's reply stream from the durable log, from
// the event after the one the client last saw, until the final response.
// The gateway that took the request need not be alive: every reply is in
// the reply topic, keyed by that gateway, for as long as the topic keeps it.
func (g *Gateway) serveResume(w http.ResponseWriter, r *http.Request, lastID string) string {
	sid := r.Header.Get(hSessionID)
	if sid == "" || !validSessionID(sid) {
		writeError(w, http.StatusBadRequest, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "resuming a stream needs Mcp-Session-Id"))
		return "rejected"
	}
	pos, err := parseEventID(lastID)
	if err != nil {
		writeError(w, http.StatusBadRequest, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "%v", err))
		return "rejected"
	}
	if !g.Ready() {
		writeNotReady(w, nil)
		return "unavailable"
	}
	topic := g.cfg.Streams.Topics.Replies()
	part := streams.PartitionFor(pos.Gateway, g.cfg.Streams.Partitions)
	cl, err := streams.NewClient(g.cfg.Streams, "gateway-resume-"+g.cfg.ID, g.cfg.Logger,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().At(pos.Offset + 1)}}),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, nil, jsonrpc.Errorf(jsonrpc.CodeInternalError, "resuming: %v", err))
		return "unavailable"
	}
	defer cl.Close()

	deadline := time.Now().Add(g.cfg.RequestTimeout)
	// The poll itself must end at the deadline: a stream nobody writes to
	// any more (an unknown token, a request long answered) has no next
	// record to wake it.
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	var sse *sseWriter
	for time.Now().Before(deadline) {
		fetches := cl.PollFetches(ctx)
		if r.Context().Err() != nil {
			return "client_gone"
		}
		if ctx.Err() != nil {
			break
		}
		done := false
		fetches.EachRecord(func(rec *kgo.Record) {
			if done || string(rec.Key) != pos.Gateway {
				return
			}
			rep, err := g.reg.DecodeReply(rec.Value)
			if err != nil || rep.ReplyToken != pos.Token {
				return
			}
			// The token is a secret of the session that made the request;
			// a reply of another session is never shown, whoever asks.
			if rep.SessionID != sid {
				return
			}
			if sse == nil {
				sse = g.startSSE(w, sid)
			}
			id := streamPos{Gateway: pos.Gateway, Token: pos.Token, Offset: rec.Offset, RPCID: pos.RPCID}.eventID()
			switch rep.Kind {
			case schemas.ReplyNotification:
				sse.send(id, rep.Message)
			case schemas.ReplyResponse:
				sse.send(id, jsonrpc.Compose(pos.RPCID, rep.Message))
				done = true
			}
		})
		if done {
			return "ok"
		}
		if sse == nil {
			// Open the stream before the first event, so the client is not
			// left waiting on headers while the tool still runs.
			sse = g.startSSE(w, sid)
			sse.w.Write([]byte(": resumed\n\n"))
			sse.flush()
		}
	}
	if sse != nil {
		sse.send("", jsonrpc.Compose(pos.RPCID, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeTimeout,
			"no reply within %s; retry with the same id to get the result", g.cfg.RequestTimeout))))
	}
	return "timeout"
}
