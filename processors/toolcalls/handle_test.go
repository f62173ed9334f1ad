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
	response = `{"result":{"content":[{"type":"text","text":"hi"}]}}`
)

var (
	w1 = schemas.Waiter{Gateway: "gw-1", ReplyToken: "tok-1"}
	w2 = schemas.Waiter{Gateway: "gw-2", ReplyToken: "tok-2"}
	w3 = schemas.Waiter{Gateway: "gw-1", ReplyToken: "tok-3"} // same gateway, another request
)

func job(w schemas.Waiter, opts ...func(*schemas.ToolJob)) *schemas.ToolJob {
	j := &schemas.ToolJob{EventID: eventID, SessionID: sid, Principal: alice, Tool: "echo",
		Arguments: []byte(`{"x":1}`), ProgressToken: []byte(`"p"`), ReplyGateway: w.Gateway, ReplyToken: w.ReplyToken, AcceptedAt: earlier}
	for _, o := range opts {
		o(j)
	}
	return j
}

func running(waiters ...schemas.Waiter) *schemas.ToolCallState {
	return &schemas.ToolCallState{EventID: eventID, SessionID: sid, Principal: alice, Tool: "echo",
		Status: schemas.CallRunning, Waiters: waiters, AcceptedAt: earlier}
}

func completed(dups int32) *schemas.ToolCallState {
	return &schemas.ToolCallState{EventID: eventID, SessionID: sid, Principal: alice, Tool: "echo",
		Status: schemas.CallCompleted, Response: []byte(response), Duplicates: dups, AcceptedAt: earlier, CompletedAt: earlier}
}

func reply(w schemas.Waiter) *schemas.ReplyEvent {
	return &schemas.ReplyEvent{Gateway: w.Gateway, ReplyToken: w.ReplyToken, EventID: eventID, Kind: schemas.ReplyResponse,
		HTTPStatus: 200, SessionID: sid, Message: []byte(response), ProducedAt: now}
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
			t.Errorf("reply %d = %+v\nwant      %+v", i, got.Replies[i], want.Replies[i])
		}
	}
}

func TestOnCall(t *testing.T) {
	withDup := func(st *schemas.ToolCallState, n int32) *schemas.ToolCallState {
		st.Duplicates = n
		return st
	}
	cases := []struct {
		name string
		st   *schemas.ToolCallState
		job  *schemas.ToolJob
		want toolcalls.Outcome
	}{
		{name: "first call dispatches and records its waiter", job: job(w1),
			want: toolcalls.Outcome{Job: job(w1), State: &schemas.ToolCallState{EventID: eventID, SessionID: sid, Principal: alice,
				Tool: "echo", Status: schemas.CallRunning, Waiters: []schemas.Waiter{w1}, AcceptedAt: now}}},
		{name: "first call without a gateway dispatches with no waiter", job: job(schemas.Waiter{}),
			want: toolcalls.Outcome{Job: job(schemas.Waiter{}), State: &schemas.ToolCallState{EventID: eventID, SessionID: sid,
				Principal: alice, Tool: "echo", Status: schemas.CallRunning, AcceptedAt: now}}},
		{name: "stateless first call", job: job(w1, func(j *schemas.ToolJob) { j.SessionID = "" }),
			want: toolcalls.Outcome{Job: job(w1, func(j *schemas.ToolJob) { j.SessionID = "" }), State: &schemas.ToolCallState{
				EventID: eventID, Principal: alice, Tool: "echo", Status: schemas.CallRunning, Waiters: []schemas.Waiter{w1}, AcceptedAt: now}}},
		{name: "duplicate while running joins the waiters", st: running(w1), job: job(w2),
			want: toolcalls.Outcome{State: withDup(running(w1, w2), 1)}},
		{name: "duplicate from the same gateway is another waiter", st: withDup(running(w1, w2), 1), job: job(w3),
			want: toolcalls.Outcome{State: withDup(running(w1, w2, w3), 2)}},
		{name: "duplicate while running without a gateway only counts", st: running(w1), job: job(schemas.Waiter{}),
			want: toolcalls.Outcome{State: withDup(running(w1), 1)}},
		{name: "redelivery of the first call dispatches again, state unchanged", st: running(w1), job: job(w1),
			want: toolcalls.Outcome{Job: job(w1)}},
		{name: "redelivery of a later waiter dispatches again, state unchanged", st: withDup(running(w1, w2), 1), job: job(w2),
			want: toolcalls.Outcome{Job: job(w2)}},
		{name: "duplicate after completion is answered from the table", st: completed(0), job: job(w2),
			want: toolcalls.Outcome{State: completed(1), Replies: []*schemas.ReplyEvent{reply(w2)}}},
		{name: "duplicate after completion without a gateway only counts", st: completed(3), job: job(schemas.Waiter{}),
			want: toolcalls.Outcome{State: completed(4)}},
		{name: "other principal while running is ignored", st: running(w1),
			job:  job(w2, func(j *schemas.ToolJob) { j.Principal = "bearer:mallory" }),
			want: toolcalls.Outcome{}},
		{name: "other principal after completion gets nothing", st: completed(0),
			job:  job(w2, func(j *schemas.ToolJob) { j.Principal = "bearer:mallory" }),
			want: toolcalls.Outcome{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := cloneState(tc.st)
			out := toolcalls.OnCall(tc.st, tc.job, now)
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
	a := toolcalls.OnCall(st, job(w2), now)
	b := toolcalls.OnCall(st, job(w3), now)
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
		call   *schemas.ToolJob // or
		result bool
	}
	res := &schemas.ToolResult{EventID: eventID, Response: []byte(response)}
	cases := []struct {
		name    string
		steps   []step
		jobs    int
		replies map[schemas.Waiter]int
		dups    int32
	}{
		{name: "two waiters, two results", steps: []step{{call: job(w1)}, {call: job(w2)}, {result: true}, {result: true}},
			jobs: 1, replies: map[schemas.Waiter]int{w1: 1, w2: 1}, dups: 1},
		{name: "redelivery before the result", steps: []step{{call: job(w1)}, {call: job(w1)}, {result: true}},
			jobs: 2, replies: map[schemas.Waiter]int{w1: 1}},
		{name: "late duplicate", steps: []step{{call: job(w1)}, {result: true}, {call: job(w2)}, {result: true}},
			jobs: 1, replies: map[schemas.Waiter]int{w1: 1, w2: 1}, dups: 1},
		{name: "many waiters", steps: []step{{call: job(w1)}, {call: job(w2)}, {call: job(w3)}, {call: job(w1)}, {result: true}},
			jobs: 2, replies: map[schemas.Waiter]int{w1: 1, w2: 1, w3: 1}, dups: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var st *schemas.ToolCallState
			jobs := 0
			got := map[schemas.Waiter]int{}
			for _, s := range tc.steps {
				var out toolcalls.Outcome
				if s.result {
					out = toolcalls.OnResult(st, res, now)
				} else {
					out = toolcalls.OnCall(st, s.call, now)
				}
				if out.State != nil {
					st = out.State
				}
				if out.Job != nil {
					jobs++
				}
				for _, r := range out.Replies {
					got[schemas.Waiter{Gateway: r.Gateway, ReplyToken: r.ReplyToken}]++
				}
			}
			if jobs != tc.jobs {
				t.Errorf("%d jobs dispatched, want %d", jobs, tc.jobs)
			}
			if !reflect.DeepEqual(got, tc.replies) {
				t.Errorf("replies per waiter = %v, want %v", got, tc.replies)
			}
			if st == nil || st.Status != schemas.CallCompleted || len(st.Waiters) != 0 || st.Duplicates != tc.dups {
				t.Errorf("final state = %+v, want completed, no waiters, %d duplicates", st, tc.dups)
			}
		})
	}
}
