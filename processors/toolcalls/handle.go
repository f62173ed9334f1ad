package toolcalls

import (
	"time"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/schemas"
)

// Outcome is what one event does.
type Outcome struct {
	State   *schemas.ToolCallState
	Job     *schemas.ToolJob // dispatch to executors
	Replies []*schemas.ReplyEvent
}

func replyTo(w schemas.Waiter, st *schemas.ToolCallState, now time.Time) *schemas.ReplyEvent {
	return &schemas.ReplyEvent{Gateway: w.Gateway, ReplyToken: w.ReplyToken, EventID: st.EventID,
		Kind: schemas.ReplyResponse, HTTPStatus: 200, SessionID: st.SessionID, Message: st.Response, ProducedAt: now}
}

// OnCall handles an accepted tools/call found at offset of the toolcalls
// topic.
func OnCall(st *schemas.ToolCallState, job *schemas.ToolJob, offset int64, now time.Time) Outcome {
	w := schemas.Waiter{Gateway: job.ReplyGateway, ReplyToken: job.ReplyToken}
	if st == nil {
		next := &schemas.ToolCallState{EventID: job.EventID, SessionID: job.SessionID, Principal: job.Principal,
			Tool: job.Tool, Status: schemas.CallRunning, AcceptedAt: now, CallOffset: offset}
		if w.Gateway != "" {
			next.Waiters = []schemas.Waiter{w}
		}
		return Outcome{State: next, Job: job}
	}
	if st.Principal != job.Principal {
		// Sessions are bound to principals and keyed event ids include
		// them, so this is a forged event or a collision: never hand one
		// caller another's result, but do not leave it waiting either.
		if w.Gateway == "" {
			return Outcome{}
		}
		return Outcome{Replies: []*schemas.ReplyEvent{{Gateway: w.Gateway, ReplyToken: w.ReplyToken, EventID: job.EventID,
			Kind: schemas.ReplyResponse, HTTPStatus: 200, SessionID: job.SessionID, ProducedAt: now,
			Message: jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "request id is in use by another caller"))}}}
	}
	switch st.Status {
	case schemas.CallCompleted:
		out := Outcome{}
		if offset != st.CallOffset {
			// A replay of the creating event is not a duplicate call.
			next := *st
			next.Duplicates++
			out.State = &next
		}
		if w.Gateway != "" {
			out.Replies = []*schemas.ReplyEvent{replyTo(w, st, now)}
		}
		return out
	default:
		if offset == st.CallOffset {
			// The call that created this state, delivered again: goka
			// replayed it after a crash, and the job it dispatched may not
			// have left. Dispatch again (at-least-once to executors).
			return Outcome{Job: job}
		}
		for _, have := range st.Waiters {
			if have == w {
				return Outcome{} // a replayed duplicate, already waiting
			}
		}
		next := *st
		next.Duplicates++
		if w.Gateway != "" {
			next.Waiters = append(append([]schemas.Waiter{}, st.Waiters...), w)
		}
		return Outcome{State: &next}
	}
}

// OnResult completes a call with an executor's result. Only the first
// result counts: a second one comes from a job that ran again after an
// executor crash, and its waiters were already answered.
func OnResult(st *schemas.ToolCallState, res *schemas.ToolResult, now time.Time) Outcome {
	if st == nil || st.Status == schemas.CallCompleted {
		return Outcome{}
	}
	next := *st
	next.Status = schemas.CallCompleted
	next.Response = res.Response
	next.CompletedAt = now
	out := Outcome{State: &next}
	for _, w := range st.Waiters {
		out.Replies = append(out.Replies, replyTo(w, &next, now))
	}
	next.Waiters = nil
	return out
}
