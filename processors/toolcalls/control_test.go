package toolcalls_test

import (
	"strings"
	"testing"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors/toolcalls"
	"github.com/mcpstream/mcpstream/schemas"
)

func claimed(claimBy, inc string, idempotent bool) *schemas.ToolCallState {
	return &schemas.ToolCallState{EventID: eventID, SessionID: sid, Principal: alice, Tool: "t", Status: schemas.CallRunning,
		Waiters: []schemas.Waiter{w1}, CallOffset: callOff, Job: []byte("framed-job"), Idempotent: idempotent,
		ClaimExecutor: claimBy, ClaimIncarnation: inc, Attempts: map[bool]int32{true: 1, false: 0}[claimBy != ""]}
}

func ctl(kind schemas.ToolControlKind, ex, inc string, idem bool) *schemas.ToolControl {
	return &schemas.ToolControl{EventID: eventID, Kind: kind, Executor: ex, Incarnation: inc, Idempotent: idem, ProducedAt: now}
}

func oneCommand(t *testing.T, out toolcalls.Outcome, kind schemas.ExecutorCommandKind, to string) *schemas.ExecutorCommand {
	t.Helper()
	if len(out.Commands) != 1 || out.Commands[0].Kind != kind || out.Commands[0].Executor != to {
		t.Fatalf("commands %+v, want one %s to %s", out.Commands, kind, to)
	}
	return out.Commands[0]
}

func errorCode(t *testing.T, body []byte) int {
	t.Helper()
	code, ok := jsonrpc.IsError(body)
	if !ok {
		t.Fatalf("body %s is not an error", body)
	}
	return code
}

func TestClaimGrantsOnceThenConflicts(t *testing.T) {
	out := toolcalls.OnControl(claimed("", "", false), ctl(schemas.ControlClaim, "x1", "i1", false), now)
	oneCommand(t, out, schemas.CommandGrant, "x1")
	if out.State == nil || out.State.ClaimExecutor != "x1" || out.State.ClaimIncarnation != "i1" || out.State.Attempts != 1 {
		t.Fatalf("state after first claim %+v", out.State)
	}
	st := out.State
	// The holder claiming again (a redelivery) gets the same grant, no change.
	again := toolcalls.OnControl(st, ctl(schemas.ControlClaim, "x1", "i1", false), now)
	oneCommand(t, again, schemas.CommandGrant, "x1")
	if again.State != nil {
		t.Fatalf("repeated claim changed state: %+v", again.State)
	}
	// Another executor, or the same id after a restart, is told who holds it.
	for _, other := range [][2]string{{"x2", "i2"}, {"x1", "i9"}} {
		c := oneCommand(t, toolcalls.OnControl(st, ctl(schemas.ControlClaim, other[0], other[1], false), now), schemas.CommandConflict, other[0])
		if c.HolderExecutor != "x1" || c.HolderIncarnation != "i1" {
			t.Fatalf("conflict names holder %s/%s, want x1/i1", c.HolderExecutor, c.HolderIncarnation)
		}
	}
}

func TestClaimOfFinishedOrUnknownCallIsDropped(t *testing.T) {
	done := claimed("x1", "i1", false)
	done.Status = schemas.CallCompleted
	cancelled := claimed("x1", "i1", false)
	cancelled.CancelRequested = true
	for name, st := range map[string]*schemas.ToolCallState{"unknown": nil, "completed": done, "cancelled": cancelled} {
		out := toolcalls.OnControl(st, ctl(schemas.ControlClaim, "x2", "i2", false), now)
		oneCommand(t, out, schemas.CommandDrop, "x2")
		if out.State != nil {
			t.Errorf("%s: claim changed state", name)
		}
	}
}

func TestOrphanOfNonIdempotentCallFailsWithInterrupted(t *testing.T) {
	out := toolcalls.OnControl(claimed("x1", "i1", false), ctl(schemas.ControlOrphan, "x1", "i1", false), now)
	if out.State == nil || out.State.Status != schemas.CallCompleted || out.Redispatch {
		t.Fatalf("outcome %+v, want completed without redispatch", out)
	}
	if code := errorCode(t, out.State.Response); code != jsonrpc.CodeCallInterrupted {
		t.Fatalf("code %d, want %d", code, jsonrpc.CodeCallInterrupted)
	}
	if !strings.Contains(string(out.State.Response), "not marked idempotent") {
		t.Errorf("error does not say why: %s", out.State.Response)
	}
	if len(out.Replies) != 1 || out.Replies[0].Gateway != w1.Gateway || out.State.Job != nil || len(out.State.Waiters) != 0 {
		t.Fatalf("waiters not answered or job kept: %+v", out)
	}
}

func TestOrphanOfIdempotentCallRunsAgain(t *testing.T) {
	out := toolcalls.OnControl(claimed("x1", "i1", true), ctl(schemas.ControlOrphan, "x1", "i1", false), now)
	if !out.Redispatch || out.State == nil || out.State.ClaimExecutor != "" || out.State.Status != schemas.CallRunning || len(out.Replies) != 0 {
		t.Fatalf("outcome %+v, want the job dispatched again, unclaimed", out)
	}
	// The next claim is granted, as attempt 2.
	g := toolcalls.OnControl(out.State, ctl(schemas.ControlClaim, "x2", "i2", true), now)
	if c := oneCommand(t, g, schemas.CommandGrant, "x2"); c.Attempt != 2 {
		t.Fatalf("attempt %d, want 2", c.Attempt)
	}
}

func TestStaleOrphanReportsAreIgnored(t *testing.T) {
	st := claimed("x2", "i2", false)
	for _, c := range []*schemas.ToolControl{ctl(schemas.ControlOrphan, "x1", "i1", false), ctl(schemas.ControlOrphan, "x2", "old", false)} {
		if out := toolcalls.OnControl(st, c, now); out.State != nil || len(out.Replies)+len(out.Commands) != 0 || out.Redispatch {
			t.Fatalf("stale orphan %+v acted: %+v", c, out)
		}
	}
	done := claimed("", "", false)
	done.Status = schemas.CallCompleted
	if out := toolcalls.OnControl(done, ctl(schemas.ControlOrphan, "x1", "i1", false), now); out.State != nil {
		t.Fatal("orphan report reopened a completed call")
	}
}

func TestReleaseLetsAnyToolRunElsewhere(t *testing.T) {
	out := toolcalls.OnControl(claimed("x1", "i1", false), ctl(schemas.ControlRelease, "x1", "i1", false), now)
	if !out.Redispatch || out.State == nil || out.State.ClaimExecutor != "" {
		t.Fatalf("release: %+v, want redispatch", out)
	}
	if out := toolcalls.OnControl(claimed("x2", "i2", false), ctl(schemas.ControlRelease, "x1", "i1", false), now); out.Redispatch || out.State != nil {
		t.Fatal("a release by a non-holder acted")
	}
}

func TestCancel(t *testing.T) {
	// Unclaimed: answered at once.
	out := toolcalls.OnControl(claimed("", "", false), ctl(schemas.ControlCancel, "", "", false), now)
	if out.State == nil || out.State.Status != schemas.CallCompleted || errorCode(t, out.State.Response) != jsonrpc.CodeRequestCancelled || len(out.Replies) != 1 {
		t.Fatalf("cancel of unclaimed call: %+v", out)
	}
	// Claimed: the holder is told; the result it reports completes the call.
	out = toolcalls.OnControl(claimed("x1", "i1", false), ctl(schemas.ControlCancel, "", "", false), now)
	c := oneCommand(t, out, schemas.CommandCancel, "x1")
	if c.Incarnation != "i1" || out.State == nil || !out.State.CancelRequested || out.State.Status != schemas.CallRunning {
		t.Fatalf("cancel of claimed call: %+v / %+v", out, c)
	}
	// If the holder dies meanwhile, the call ends cancelled, not interrupted.
	o := toolcalls.OnControl(out.State, ctl(schemas.ControlOrphan, "x1", "i1", false), now)
	if o.State == nil || errorCode(t, o.State.Response) != jsonrpc.CodeRequestCancelled {
		t.Fatalf("orphan after cancel: %+v", o)
	}
}

func TestResultClearsClaimAndJob(t *testing.T) {
	out := toolcalls.OnResult(claimed("x1", "i1", false), &schemas.ToolResult{EventID: eventID, Executor: "x1", Response: []byte(response)}, now)
	if out.State == nil || out.State.Status != schemas.CallCompleted || out.State.Job != nil || out.State.ClaimExecutor != "" || len(out.Replies) != 1 {
		t.Fatalf("result: %+v", out)
	}
	// A second result (an idempotent call that ran twice) changes nothing.
	if again := toolcalls.OnResult(out.State, &schemas.ToolResult{EventID: eventID, Executor: "x2", Response: []byte(`{"result":{}}`)}, now); again.State != nil || len(again.Replies) != 0 {
		t.Fatalf("second result acted: %+v", again)
	}
}

// A request identity reused for another call is refused, not answered with
// the first call's result; a retry with re-serialised arguments is a retry.
func TestReusedIdentityWithOtherArguments(t *testing.T) {
	first := &schemas.ToolJob{EventID: eventID, SessionID: sid, Principal: alice, Tool: "echo", Arguments: []byte(`{"a":1,"b":"x"}`),
		ReplyGateway: w1.Gateway, ReplyToken: w1.ReplyToken}
	out := toolcalls.OnCall(nil, first, nil, callOff, now)
	if out.State == nil || out.State.Fingerprint == "" {
		t.Fatalf("no fingerprint recorded: %+v", out.State)
	}
	st := out.State
	retry := *first
	retry.Arguments = []byte(`{ "b": "x", "a": 1 }`)
	retry.ReplyGateway, retry.ReplyToken = w2.Gateway, w2.ReplyToken
	if got := toolcalls.OnCall(st, &retry, nil, laterOff, now); got.State == nil || len(got.State.Waiters) != 2 || len(got.Replies) != 0 {
		t.Fatalf("re-serialised retry not joined: %+v", got)
	}
	other := retry
	other.Arguments = []byte(`{"a":2,"b":"x"}`)
	got := toolcalls.OnCall(st, &other, nil, laterOff, now)
	if got.State != nil || got.Job != nil || len(got.Replies) != 1 || errorCode(t, got.Replies[0].Message) != -32602 {
		t.Fatalf("reused identity with other arguments: %+v", got)
	}
	otherTool := retry
	otherTool.Tool = "count"
	if got := toolcalls.OnCall(st, &otherTool, nil, laterOff, now); len(got.Replies) != 1 || errorCode(t, got.Replies[0].Message) != -32602 {
		t.Fatalf("reused identity with another tool: %+v", got)
	}
	// The creating event, delivered again, is not a reuse.
	if got := toolcalls.OnCall(st, first, nil, callOff, now); len(got.Replies) != 0 {
		t.Fatalf("redelivery refused: %+v", got)
	}
}
