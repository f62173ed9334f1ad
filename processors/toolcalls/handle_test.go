package toolcalls_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/processors/toolcalls"
	"github.com/mcpstream/mcpstream/schemas"
)

var (
	now     = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	earlier = now.Add(-time.Second)
)

const (
	eventID  = "ev-1"
	sid      = "sess-1"
	alice    = "bearer:alice"
	mallory  = "bearer:mallory"
	response = `{"result":{"content":[{"type":"text","text":"hi"}]}}`
	// inUse is the reply to a call whose event id another principal holds.
	inUse = `{"error":{"code":-32600,"message":"request id is in use by another caller"}}`
)

// Offsets in the toolcalls topic: callOff created the fixture states,
// laterOff is any other event with the same event id.
const (
	callOff  = int64(7)
	laterOff = int64(12)
)

var (
	w1   = schemas.Waiter{Gateway: "gw-1", ReplyToken: "tok-1"}
	w2   = schemas.Waiter{Gateway: "gw-2", ReplyToken: "tok-2"}
	w3   = schemas.Waiter{Gateway: "gw-1", ReplyToken: "tok-3"} // same gateway, another request
	noGW = schemas.Waiter{}                                     // a call nobody waits for
)

func job(w schemas.Waiter, opts ...func(*schemas.ToolJob)) *schemas.ToolJob {
	j := &schemas.ToolJob{EventID: eventID, SessionID: sid, Principal: alice, Tool: "echo",
		Arguments: []byte(`{"x":1}`), ProgressToken: []byte(`"p"`), ReplyGateway: w.Gateway, ReplyToken: w.ReplyToken, AcceptedAt: earlier}
	for _, o := range opts {
		o(j)
	}
	return j
}

// byMallory makes a job another principal's, from another session.
func byMallory(j *schemas.ToolJob) { j.Principal, j.SessionID = mallory, "sess-m" }

func running(waiters ...schemas.Waiter) *schemas.ToolCallState {
	return &schemas.ToolCallState{EventID: eventID, SessionID: sid, Principal: alice, Tool: "echo",
		Status: schemas.CallRunning, Waiters: waiters, CallOffset: callOff, AcceptedAt: earlier}
}

func completed(dups int32) *schemas.ToolCallState {
	return &schemas.ToolCallState{EventID: eventID, SessionID: sid, Principal: alice, Tool: "echo",
		Status: schemas.CallCompleted, Response: []byte(response), Duplicates: dups, CallOffset: callOff,
		AcceptedAt: earlier, CompletedAt: earlier}
}

func reply(w schemas.Waiter) *schemas.ReplyEvent {
	return &schemas.ReplyEvent{Gateway: w.Gateway, ReplyToken: w.ReplyToken, EventID: eventID, Kind: schemas.ReplyResponse,
		HTTPStatus: 200, SessionID: sid, Message: []byte(response), ProducedAt: now}
}

// rejected is the reply to mallory's call (byMallory) waiting at w.
func rejected(w schemas.Waiter) *schemas.ReplyEvent {
	return &schemas.ReplyEvent{Gateway: w.Gateway, ReplyToken: w.ReplyToken, EventID: eventID, Kind: schemas.ReplyResponse,
		HTTPStatus: 200, SessionID: "sess-m", Message: []byte(inUse), ProducedAt: now}
}

func cloneState(st *schemas.ToolCallState) *schemas.ToolCallState {
	if st == nil {
		return nil
	}
	c := *st
	c.Waiters = slices.Clone(st.Waiters)
	c.Response = slices.Clone(st.Response)
	return &c
}

func checkOutcome(t *testing.T, got toolcalls.Outcome, want toolcalls.Outcome) {
	t.Helper()
	if got.State != nil && want.State != nil && want.State.Fingerprint == "" {
		// Fingerprints have their own test (TestReusedIdentityWithOtherArguments).
		g := *got.State
		g.Fingerprint = ""
		got.State = &g
	}
	if !reflect.DeepEqual(got.State, want.State) {
		t.Errorf("state = %+v\nwant    %+v", got.State, want.State)
	}
	if got.Job != want.Job && !reflect.DeepEqual(got.Job, want.Job) {
		t.Errorf("job = %+v\nwant  %+v", got.Job, want.Job)
	}
	if len(got.Replies) != len(want.Replies) {
		t.Fatalf("%d replies, want %d: %+v", len(got.Replies), len(want.Replies), got.Replies)
	}
	for i := range got.Replies {
		if !reflect.DeepEqual(got.Replies[i], want.Replies[i]) {
			t.Errorf("reply %d = %+v (message %s)\nwant      %+v (message %s)", i, got.Replies[i], got.Replies[i].Message,
				want.Replies[i], want.Replies[i].Message)
		}
	}
}

func TestOnCall(t *testing.T) {
	withDup := func(st *schemas.ToolCallState, n int32) *schemas.ToolCallState {
		st.Duplicates = n
		return st
	}
	cases := []struct {
		name   string
		st     *schemas.ToolCallState
		job    *schemas.ToolJob
		offset int64
		want   toolcalls.Outcome
	}{
		// a new call
		{name: "first call dispatches and records its waiter and offset", job: job(w1), offset: callOff,
			want: toolcalls.Outcome{Job: job(w1), State: &schemas.ToolCallState{EventID: eventID, SessionID: sid, Principal: alice,
				Tool: "echo", Status: schemas.CallRunning, Waiters: []schemas.Waiter{w1}, CallOffset: callOff, AcceptedAt: now}}},
		{name: "first call at offset 0 records offset 0", job: job(w1), offset: 0,
			want: toolcalls.Outcome{Job: job(w1), State: &schemas.ToolCallState{EventID: eventID, SessionID: sid, Principal: alice,
				Tool: "echo", Status: schemas.CallRunning, Waiters: []schemas.Waiter{w1}, CallOffset: 0, AcceptedAt: now}}},
		{name: "first call without a gateway dispatches with no waiter", job: job(noGW), offset: callOff,
			want: toolcalls.Outcome{Job: job(noGW), State: &schemas.ToolCallState{EventID: eventID, SessionID: sid,
				Principal: alice, Tool: "echo", Status: schemas.CallRunning, CallOffset: callOff, AcceptedAt: now}}},
		{name: "stateless first call", job: job(w1, func(j *schemas.ToolJob) { j.SessionID = "" }), offset: callOff,
			want: toolcalls.Outcome{Job: job(w1, func(j *schemas.ToolJob) { j.SessionID = "" }), State: &schemas.ToolCallState{
				EventID: eventID, Principal: alice, Tool: "echo", Status: schemas.CallRunning, Waiters: []schemas.Waiter{w1},
				CallOffset: callOff, AcceptedAt: now}}},

		// running: redelivery of the creating event (same offset)
		{name: "redelivery of the creating call dispatches again, state unchanged", st: running(w1), job: job(w1), offset: callOff,
			want: toolcalls.Outcome{Job: job(w1)}},
		{name: "redelivery of a creating call without a gateway dispatches again", st: running(), job: job(noGW), offset: callOff,
			want: toolcalls.Outcome{Job: job(noGW)}},
		{name: "redelivery dispatches again while duplicates wait", st: withDup(running(w1, w2), 1), job: job(w1), offset: callOff,
			want: toolcalls.Outcome{Job: job(w1)}},

		// running: another event with the same id (another offset)
		{name: "duplicate while running joins the waiters", st: running(w1), job: job(w2), offset: laterOff,
			want: toolcalls.Outcome{State: withDup(running(w1, w2), 1)}},
		{name: "duplicate from the same gateway is another waiter", st: withDup(running(w1, w2), 1), job: job(w3), offset: laterOff,
			want: toolcalls.Outcome{State: withDup(running(w1, w2, w3), 2)}},
		{name: "duplicate while running without a gateway only counts, no dispatch", st: running(w1), job: job(noGW), offset: laterOff,
			want: toolcalls.Outcome{State: withDup(running(w1), 1)}},
		{name: "duplicate without a gateway of a call without one only counts", st: withDup(running(), 2), job: job(noGW), offset: laterOff,
			want: toolcalls.Outcome{State: withDup(running(), 3)}},
		{name: "the creating waiter at another offset is a replayed duplicate", st: running(w1), job: job(w1), offset: laterOff,
			want: toolcalls.Outcome{}},
		{name: "a waiting duplicate at another offset is a replayed duplicate", st: withDup(running(w1, w2), 1), job: job(w2), offset: laterOff,
			want: toolcalls.Outcome{}},
		{name: "a waiting duplicate at an earlier offset is a replayed duplicate", st: withDup(running(w1, w2), 1), job: job(w2), offset: callOff - 1,
			want: toolcalls.Outcome{}},

		// completed
		{name: "duplicate after completion is answered from the table", st: completed(0), job: job(w2), offset: laterOff,
			want: toolcalls.Outcome{State: completed(1), Replies: []*schemas.ReplyEvent{reply(w2)}}},
		{name: "duplicate after completion without a gateway only counts", st: completed(3), job: job(noGW), offset: laterOff,
			want: toolcalls.Outcome{State: completed(4)}},
		// The creating event redelivered after the result: answered again
		// (the gateway drops a second answer) and, as the state cannot tell
		// it from a duplicate, counted as one.
		{name: "redelivery after completion is answered from the table", st: completed(0), job: job(w1), offset: callOff,
			want: toolcalls.Outcome{Replies: []*schemas.ReplyEvent{reply(w1)}}}, // a replay, not a duplicate

		// another principal
		{name: "other principal while running is refused", st: running(w1), job: job(w2, byMallory), offset: laterOff,
			want: toolcalls.Outcome{Replies: []*schemas.ReplyEvent{rejected(w2)}}},
		{name: "other principal at the creating offset is refused, not dispatched", st: running(w1), job: job(w2, byMallory), offset: callOff,
			want: toolcalls.Outcome{Replies: []*schemas.ReplyEvent{rejected(w2)}}},
		{name: "other principal while running without a gateway is ignored", st: running(w1), job: job(noGW, byMallory), offset: laterOff,
			want: toolcalls.Outcome{}},
		{name: "other principal after completion is refused, not answered from the table", st: completed(0), job: job(w2, byMallory), offset: laterOff,
			want: toolcalls.Outcome{Replies: []*schemas.ReplyEvent{rejected(w2)}}},
		{name: "other principal after completion without a gateway gets nothing", st: completed(0), job: job(noGW, byMallory), offset: laterOff,
			want: toolcalls.Outcome{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := cloneState(tc.st)
			out := toolcalls.OnCall(tc.st, tc.job, nil, tc.offset, now)
			checkOutcome(t, out, tc.want)
			if !reflect.DeepEqual(tc.st, before) {
				t.Errorf("OnCall modified its input state:\n got %+v\nwant %+v", tc.st, before)
			}
			if out.Job != nil && out.Job != tc.job {
				t.Errorf("dispatched job is not the call's job")
			}
		})
	}
}

func TestOnCallDoesNotAliasWaiters(t *testing.T) {
	// A state whose Waiters slice has spare capacity: appending in place
	// would let two outcomes built from it share (and overwrite) a waiter.
	st := running(w1)
	st.Waiters = append(make([]schemas.Waiter, 0, 4), w1)
	a := toolcalls.OnCall(st, job(w2), nil, laterOff, now)
	b := toolcalls.OnCall(st, job(w3), nil, laterOff+1, now)
	if got := a.State.Waiters; !reflect.DeepEqual(got, []schemas.Waiter{w1, w2}) {
		t.Errorf("first outcome waiters = %v, want [w1 w2]", got)
	}
	if got := b.State.Waiters; !reflect.DeepEqual(got, []schemas.Waiter{w1, w3}) {
		t.Errorf("second outcome waiters = %v, want [w1 w3]", got)
	}
}

func TestOnResult(t *testing.T) {
	res := &schemas.ToolResult{EventID: eventID, Executor: "ex-1", Response: []byte(response), StartedAt: earlier, FinishedAt: now}
	done := func(dups int32) *schemas.ToolCallState {
		st := completed(dups)
		st.CompletedAt = now
		return st
	}
	withDup := func(st *schemas.ToolCallState, n int32) *schemas.ToolCallState {
		st.Duplicates = n
		return st
	}
	cases := []struct {
		name string
		st   *schemas.ToolCallState
		want toolcalls.Outcome
	}{
		{name: "result completes and answers every waiter in order", st: withDup(running(w1, w2, w3), 2),
			want: toolcalls.Outcome{State: done(2), Replies: []*schemas.ReplyEvent{reply(w1), reply(w2), reply(w3)}}},
		{name: "result without waiters completes silently", st: running(),
			want: toolcalls.Outcome{State: done(0)}},
		{name: "second result is ignored", st: completed(1), want: toolcalls.Outcome{}},
		{name: "result for an unknown call is ignored", want: toolcalls.Outcome{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := cloneState(tc.st)
			out := toolcalls.OnResult(tc.st, res, now)
			checkOutcome(t, out, tc.want)
			if out.Job != nil {
				t.Errorf("a result dispatched a job")
			}
			if !reflect.DeepEqual(tc.st, before) {
				t.Errorf("OnResult modified its input state:\n got %+v\nwant %+v", tc.st, before)
			}
		})
	}
}

// TestSequence feeds events through OnCall/OnResult the way the processor
// does (each outcome's state is the next input) and counts what leaves.
func TestSequence(t *testing.T) {
	type step struct {
		call   *schemas.ToolJob // at offset, or
		offset int64
		result bool
	}
	// Offsets are counted from base: the first call of the id need not be
	// the first event of its partition.
	const base = 3
	call := func(w schemas.Waiter, offset int64, opts ...func(*schemas.ToolJob)) step {
		return step{call: job(w, opts...), offset: base + offset}
	}
	res := step{result: true}
	result := &schemas.ToolResult{EventID: eventID, Response: []byte(response)}
	none := map[schemas.Waiter]int{}
	cases := []struct {
		name    string
		steps   []step
		jobs    int
		replies map[schemas.Waiter]int
		refused map[schemas.Waiter]int
		dups    int32
	}{
		{name: "two waiters, two results", steps: []step{call(w1, 0), call(w2, 1), res, res},
			jobs: 1, replies: map[schemas.Waiter]int{w1: 1, w2: 1}, dups: 1},
		{name: "redelivery before the result", steps: []step{call(w1, 0), call(w1, 0), res},
			jobs: 2, replies: map[schemas.Waiter]int{w1: 1}},
		{name: "the same waiter at a new offset is not dispatched again", steps: []step{call(w1, 0), call(w1, 1), res},
			jobs: 1, replies: map[schemas.Waiter]int{w1: 1}},
		{name: "redelivery of a call without a gateway", steps: []step{call(noGW, 0), call(noGW, 0), res},
			jobs: 2, replies: none},
		{name: "duplicates without a gateway run the tool once", steps: []step{call(noGW, 0), call(noGW, 1), call(noGW, 2), res},
			jobs: 1, replies: none, dups: 2},
		{name: "late duplicate", steps: []step{call(w1, 0), res, call(w2, 1), res},
			jobs: 1, replies: map[schemas.Waiter]int{w1: 1, w2: 1}, dups: 1},
		{name: "many waiters, a redelivery and a replayed duplicate",
			steps: []step{call(w1, 0), call(w2, 1), call(w3, 2), call(w1, 0), call(w2, 3), res},
			jobs:  2, replies: map[schemas.Waiter]int{w1: 1, w2: 1, w3: 1}, dups: 2},
		{name: "another principal is refused and does not join",
			steps: []step{call(w1, 0), call(w2, 1, byMallory), res, call(w3, 2, byMallory)},
			jobs:  1, replies: map[schemas.Waiter]int{w1: 1}, refused: map[schemas.Waiter]int{w2: 1, w3: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var st *schemas.ToolCallState
			jobs := 0
			got, refused := map[schemas.Waiter]int{}, map[schemas.Waiter]int{}
			for _, s := range tc.steps {
				var out toolcalls.Outcome
				if s.result {
					out = toolcalls.OnResult(st, result, now)
				} else {
					out = toolcalls.OnCall(st, s.call, nil, s.offset, now)
				}
				if out.State != nil {
					st = out.State
				}
				if out.Job != nil {
					jobs++
				}
				for _, r := range out.Replies {
					w := schemas.Waiter{Gateway: r.Gateway, ReplyToken: r.ReplyToken}
					switch string(r.Message) {
					case response:
						got[w]++
					case inUse:
						refused[w]++
					default:
						t.Errorf("reply to %v: %s", w, r.Message)
					}
				}
			}
			if jobs != tc.jobs {
				t.Errorf("%d jobs dispatched, want %d", jobs, tc.jobs)
			}
			if !reflect.DeepEqual(got, tc.replies) {
				t.Errorf("replies per waiter = %v, want %v", got, tc.replies)
			}
			if len(refused) != 0 || len(tc.refused) != 0 {
				if !reflect.DeepEqual(refused, tc.refused) {
					t.Errorf("refusals per waiter = %v, want %v", refused, tc.refused)
				}
			}
			if st == nil || st.Status != schemas.CallCompleted || len(st.Waiters) != 0 || st.Duplicates != tc.dups ||
				st.CallOffset != base || st.Principal != alice {
				t.Errorf("final state = %+v, want alice's, completed, no waiters, %d duplicates, call offset %d", st, tc.dups, base)
			}
		})
	}
}
