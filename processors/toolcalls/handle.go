package toolcalls

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/schemas"
)

// Outcome is what one event does.
type Outcome struct {
	State *schemas.ToolCallState
	// Job dispatches a job to executors; Redispatch sends the state's stored
	// job again (an orphaned call of an idempotent tool).
	Job        *schemas.ToolJob
	Redispatch bool
	Replies    []*schemas.ReplyEvent
	Commands   []*schemas.ExecutorCommand
	// Completed is the call's outcome for the tool-results topic (the
	// audit trail projections read): exactly one per call.
	Completed *schemas.ToolResult
}

func replyTo(w schemas.Waiter, st *schemas.ToolCallState, now time.Time) *schemas.ReplyEvent {
	msg := st.Response
	if st.Task {
		// Only tasks/result waits on a task: its answer names the task.
		msg = withRelatedTask(msg, st.EventID)
	}
	return &schemas.ReplyEvent{Gateway: w.Gateway, ReplyToken: w.ReplyToken, EventID: st.EventID,
		Kind: schemas.ReplyResponse, HTTPStatus: 200, SessionID: st.SessionID, Message: msg, ProducedAt: now}
}

// OnCall handles an accepted tools/call found at offset of the toolcalls
// topic; framed is the job as stored in the log.
func OnCall(st *schemas.ToolCallState, job *schemas.ToolJob, framed []byte, offset int64, now time.Time) Outcome {
	w := schemas.Waiter{Gateway: job.ReplyGateway, ReplyToken: job.ReplyToken}
	if st == nil {
		next := &schemas.ToolCallState{EventID: job.EventID, SessionID: job.SessionID, Principal: job.Principal,
			Tool: job.Tool, Status: schemas.CallRunning, AcceptedAt: now, CallOffset: offset, Job: framed,
			Task: job.Task, TaskTTLMs: job.TaskTTLMs, Fingerprint: Fingerprint(job)}
		if job.Task {
			// The caller gets the task handle now; the state carrying it is
			// written by this same callback, so a tasks/get for it, which
			// reaches this partition only after this reply, finds it.
			out := Outcome{State: next, Job: job}
			if w.Gateway != "" {
				out.Replies = []*schemas.ReplyEvent{taskReply(w, next, now)}
			}
			return out
		}
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
	if offset != st.CallOffset && st.Fingerprint != "" && Fingerprint(job) != st.Fingerprint {
		// The same request identity asking something else is not a retry:
		// answering it with the first call's result would be a wrong
		// answer, and running it would break "once per identity".
		if w.Gateway == "" {
			return Outcome{}
		}
		return Outcome{Replies: []*schemas.ReplyEvent{{Gateway: w.Gateway, ReplyToken: w.ReplyToken, EventID: job.EventID,
			Kind: schemas.ReplyResponse, HTTPStatus: 200, SessionID: job.SessionID, ProducedAt: now,
			Message: jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInvalidParams,
				"request id (or idempotency key) already used for a different call of %s; use a new id", st.Tool))}}}
	}
	if st.Task {
		// A retry of the request that created a task gets the same handle,
		// with the status as of now.
		out := Outcome{}
		if offset == st.CallOffset && st.Status != schemas.CallCompleted && st.ClaimExecutor == "" {
			out.Job = job // redelivered after a crash; see below
		}
		if w.Gateway != "" {
			out.Replies = []*schemas.ReplyEvent{taskReply(w, st, now)}
		}
		return out
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
			// have left. Dispatch again unless an executor already claimed
			// it; a second delivery is harmless either way, because an
			// executor runs a job only after the claim is granted to it.
			if st.ClaimExecutor != "" {
				return Outcome{}
			}
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

func taskReply(w schemas.Waiter, st *schemas.ToolCallState, now time.Time) *schemas.ReplyEvent {
	return &schemas.ReplyEvent{Gateway: w.Gateway, ReplyToken: w.ReplyToken, EventID: st.EventID,
		Kind: schemas.ReplyResponse, HTTPStatus: 200, SessionID: st.SessionID, Message: createTaskResult(st), ProducedAt: now}
}

func command(c *schemas.ToolControl, st *schemas.ToolCallState, kind schemas.ExecutorCommandKind, now time.Time) *schemas.ExecutorCommand {
	cmd := &schemas.ExecutorCommand{Executor: c.Executor, Incarnation: c.Incarnation, EventID: c.EventID, Kind: kind, ProducedAt: now}
	if st != nil {
		cmd.Attempt = st.Attempts
		if kind == schemas.CommandConflict {
			cmd.HolderExecutor, cmd.HolderIncarnation = st.ClaimExecutor, st.ClaimIncarnation
		}
	}
	return cmd
}

// OnControl handles a claim, an orphan report or a cancellation. The table
// is the single arbiter of who runs a call: every decision here depends only
// on the state and the event, so a processor that replays events after a
// crash makes the same decisions again.
func OnControl(st *schemas.ToolCallState, c *schemas.ToolControl, now time.Time) Outcome {
	switch c.Kind {
	case schemas.ControlClaim:
		return onClaim(st, c, now)
	case schemas.ControlOrphan:
		return onOrphan(st, c, now)
	case schemas.ControlCancel:
		return onCancel(st, now)
	case schemas.ControlRelease:
		return onRelease(st, c, now)
	case schemas.ControlQuery:
		return onQuery(st, c, now)
	case schemas.ControlInput:
		return onInput(st, c)
	case schemas.ControlEscalate:
		return onEscalate(st, c, now)
	}
	return Outcome{}
}

func onClaim(st *schemas.ToolCallState, c *schemas.ToolControl, now time.Time) Outcome {
	switch {
	case st == nil, st.Status == schemas.CallCompleted, st.CancelRequested:
		return Outcome{Commands: []*schemas.ExecutorCommand{command(c, st, schemas.CommandDrop, now)}}
	case st.ClaimExecutor == "":
		next := *st
		next.ClaimExecutor, next.ClaimIncarnation = c.Executor, c.Incarnation
		next.Idempotent = c.Idempotent
		next.Attempts++
		return Outcome{State: &next, Commands: []*schemas.ExecutorCommand{command(c, &next, schemas.CommandGrant, now)}}
	case st.ClaimExecutor == c.Executor && st.ClaimIncarnation == c.Incarnation:
		// The holder claims again (a redelivered job, a replayed claim):
		// the same answer, and the executor ignores a grant for a call it
		// already runs.
		return Outcome{Commands: []*schemas.ExecutorCommand{command(c, st, schemas.CommandGrant, now)}}
	default:
		// Someone else holds it. Whether the holder still lives is the
		// claimant's to find out from the executors table: it reports an
		// orphan if not.
		return Outcome{Commands: []*schemas.ExecutorCommand{command(c, st, schemas.CommandConflict, now)}}
	}
}

func onOrphan(st *schemas.ToolCallState, c *schemas.ToolControl, now time.Time) Outcome {
	if st == nil || st.Status == schemas.CallCompleted ||
		st.ClaimExecutor != c.Executor || st.ClaimIncarnation != c.Incarnation {
		return Outcome{} // stale report: the call moved on already
	}
	switch {
	case st.CancelRequested:
		return complete(st, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeRequestCancelled, "request cancelled by the client")), now)
	case st.Idempotent && len(st.Job) > 0:
		next := *st
		next.ClaimExecutor, next.ClaimIncarnation = "", ""
		return Outcome{State: &next, Redispatch: true}
	default:
		return complete(st, jsonrpc.ErrorBody(&jsonrpc.Error{Code: jsonrpc.CodeCallInterrupted,
			Message: "tool call interrupted: executor " + c.Executor + " stopped while it held the call; " +
				"the tool is not marked idempotent, so it was not run again and may or may not have taken effect",
			Data: interruptedData(st.Tool, c.Executor, c.Reason)}), now)
	}
}

func onRelease(st *schemas.ToolCallState, c *schemas.ToolControl, now time.Time) Outcome {
	if st == nil || st.Status == schemas.CallCompleted ||
		st.ClaimExecutor != c.Executor || st.ClaimIncarnation != c.Incarnation || len(st.Job) == 0 {
		return Outcome{}
	}
	if st.CancelRequested {
		return complete(st, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeRequestCancelled, "request cancelled by the client")), now)
	}
	next := *st
	next.ClaimExecutor, next.ClaimIncarnation = "", ""
	return Outcome{State: &next, Redispatch: true}
}

func onCancel(st *schemas.ToolCallState, now time.Time) Outcome {
	if st == nil || st.Status == schemas.CallCompleted || st.CancelRequested {
		return Outcome{}
	}
	if st.ClaimExecutor == "" {
		return complete(st, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeRequestCancelled, "request cancelled by the client")), now)
	}
	next := *st
	next.CancelRequested = true
	return Outcome{State: &next, Commands: []*schemas.ExecutorCommand{{Executor: st.ClaimExecutor, Incarnation: st.ClaimIncarnation,
		EventID: st.EventID, Kind: schemas.CommandCancel, Attempt: st.Attempts, ProducedAt: now}}}
}

// complete ends a call with body and answers everyone waiting for it.
func complete(st *schemas.ToolCallState, body []byte, now time.Time) Outcome {
	return completeWith(st, &schemas.ToolResult{EventID: st.EventID, Executor: st.ClaimExecutor, Response: body,
		StartedAt: st.AcceptedAt, FinishedAt: now}, now)
}

func completeWith(st *schemas.ToolCallState, res *schemas.ToolResult, now time.Time) Outcome {
	body := res.Response
	next := *st
	next.Status = schemas.CallCompleted
	next.Response = body
	next.CompletedAt = now
	next.Job = nil // only needed to run the call again
	next.InputRequests = nil
	next.ClaimExecutor, next.ClaimIncarnation = "", ""
	out := Outcome{State: &next, Completed: res}
	for _, w := range st.Waiters {
		out.Replies = append(out.Replies, replyTo(w, &next, now))
	}
	next.Waiters = nil
	return out
}

// OnResult completes a call with an executor's result. Only the first
// result counts: a later one comes from an idempotent call that ran again,
// or from an executor that was declared dead while it still ran, and its
// caller was already answered.
func OnResult(st *schemas.ToolCallState, res *schemas.ToolResult, now time.Time) Outcome {
	if st == nil || st.Status == schemas.CallCompleted {
		return Outcome{}
	}
	return completeWith(st, res, now)
}

func interruptedData(tool, executor, reason string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"tool": tool, "executor": executor, "reason": reason})
	return b
}

// Fingerprint names what a call asks: its tool and its arguments in a
// canonical form (object keys sorted, numbers as written), so a retry that
// re-serialised the same arguments still matches.
func Fingerprint(job *schemas.ToolJob) string {
	args := []byte("{}")
	if len(job.Arguments) > 0 {
		d := json.NewDecoder(bytes.NewReader(job.Arguments))
		d.UseNumber()
		var v any
		if d.Decode(&v) == nil {
			if b, err := json.Marshal(v); err == nil {
				args = b
			}
		}
	}
	h := sha256.New()
	h.Write([]byte(job.Tool))
	h.Write([]byte{0})
	h.Write(args)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
