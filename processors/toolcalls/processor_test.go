package toolcalls_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/mcpstream/mcpstream/processors/processortest"
	"github.com/mcpstream/mcpstream/processors/toolcalls"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

func startToolCalls(t *testing.T, tt *tester.Tester) streams.Topics {
	t.Helper()
	processortest.Start(t, tt, func(opts []goka.ProcessorOption) (processortest.Runner, error) {
		return toolcalls.New(schemas.MustLoad(), toolcalls.Config{ClientID: "toolcalls-test", Options: opts})
	})
	return streams.Topics{}
}

func TestProcessorGraph(t *testing.T) {
	res := &schemas.ToolResult{EventID: eventID, Executor: "ex-1", Response: []byte(response), StartedAt: earlier, FinishedAt: now}
	type input struct {
		call   *schemas.ToolJob
		result *schemas.ToolResult
	}
	// The tester gives the events of the toolcalls topic offsets 0, 1, ...
	// in each subtest, so two inputs are always two events at two offsets.
	cases := []struct {
		name string
		// setState is the table value before the inputs: a call applied
		// before a crash whose offset was not committed.
		setState *schemas.ToolCallState
		inputs   []input
		jobs     int
		replies  []schemas.Waiter // in order
		refused  []schemas.Waiter // those of replies refused (another principal)
		status   schemas.ToolCallStatus
		dups     int32
	}{
		{name: "same event twice and a result: one job, one reply per waiter",
			inputs: []input{{call: job(w1)}, {call: job(w2)}, {result: res}},
			jobs:   1, replies: []schemas.Waiter{w1, w2}, status: schemas.CallCompleted, dups: 1},
		{name: "same event twice from the same waiter: one job, one reply",
			inputs: []input{{call: job(w1)}, {call: job(w1)}, {result: res}},
			jobs:   1, replies: []schemas.Waiter{w1}, status: schemas.CallCompleted},
		{name: "same event twice without a gateway: one job",
			inputs: []input{{call: job(noGW)}, {call: job(noGW)}, {result: res}},
			jobs:   1, status: schemas.CallCompleted, dups: 1},
		{name: "second result is ignored",
			inputs: []input{{call: job(w1)}, {call: job(w2)}, {result: res}, {result: res}},
			jobs:   1, replies: []schemas.Waiter{w1, w2}, status: schemas.CallCompleted, dups: 1},
		{name: "duplicate after completion is answered from the table",
			inputs: []input{{call: job(w1)}, {result: res}, {call: job(w2)}},
			jobs:   1, replies: []schemas.Waiter{w1, w2}, status: schemas.CallCompleted, dups: 1},
		{name: "redelivery of the applied call dispatches again, answers once",
			setState: func() *schemas.ToolCallState {
				st := running(w1)
				st.CallOffset = 0 // the offset the first input gets
				return st
			}(),
			inputs: []input{{call: job(w1)}, {result: res}},
			jobs:   1, replies: []schemas.Waiter{w1}, status: schemas.CallCompleted},
		{name: "redelivery of an applied call without a gateway dispatches again",
			setState: func() *schemas.ToolCallState {
				st := running()
				st.CallOffset = 0
				return st
			}(),
			inputs: []input{{call: job(noGW)}},
			jobs:   1, status: schemas.CallRunning},
		{name: "running call collects waiters",
			inputs: []input{{call: job(w1)}, {call: job(w2)}, {call: job(w3)}},
			jobs:   1, status: schemas.CallRunning, dups: 2},
		{name: "other principal is refused",
			inputs: []input{{call: job(w1)}, {call: job(w2, byMallory)}, {result: res}},
			jobs:   1, replies: []schemas.Waiter{w2, w1}, refused: []schemas.Waiter{w2}, status: schemas.CallCompleted},
		{name: "other principal without a gateway is ignored",
			inputs: []input{{call: job(w1)}, {call: job(noGW, byMallory)}, {result: res}},
			jobs:   1, replies: []schemas.Waiter{w1}, status: schemas.CallCompleted},
		{name: "result for an unknown call is ignored",
			inputs: []input{{result: res}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tt := tester.New(t)
			topics := startToolCalls(t, tt)
			table := goka.GroupTable(goka.Group(topics.ToolCallsGroup()))
			jobs := tt.NewQueueTracker(topics.Jobs())
			replies := tt.NewQueueTracker(topics.Replies())

			if tc.setState != nil {
				tt.SetTableValue(table, eventID, tc.setState)
			}
			for _, in := range tc.inputs {
				if in.call != nil {
					tt.Consume(topics.ToolCalls(), in.call.EventID, in.call)
				} else {
					tt.Consume(topics.ToolControls(), in.result.EventID, in.result)
				}
			}

			n := 0
			for {
				key, v, ok := jobs.Next()
				if !ok {
					break
				}
				n++
				j := v.(*schemas.ToolJob)
				if key != eventID || j.EventID != eventID || j.Tool != "echo" || string(j.Arguments) != `{"x":1}` || string(j.ProgressToken) != `"p"` {
					t.Errorf("job key %q = %+v", key, j)
				}
			}
			if n != tc.jobs {
				t.Errorf("%d jobs on %s, want %d", n, topics.Jobs(), tc.jobs)
			}

			var got []schemas.Waiter
			for {
				key, v, ok := replies.Next()
				if !ok {
					break
				}
				r := v.(*schemas.ReplyEvent)
				if key != r.Gateway {
					t.Errorf("reply keyed %q, addressed to %q", key, r.Gateway)
				}
				w := schemas.Waiter{Gateway: r.Gateway, ReplyToken: r.ReplyToken}
				wantSess, wantMsg := sid, response
				if slices.Contains(tc.refused, w) {
					wantSess, wantMsg = "sess-m", inUse
				}
				if r.EventID != eventID || r.Kind != schemas.ReplyResponse || r.HTTPStatus != 200 || r.SessionID != wantSess || string(r.Message) != wantMsg {
					t.Errorf("reply to %v = %+v (message %s), want session %s, message %s", w, r, r.Message, wantSess, wantMsg)
				}
				got = append(got, w)
			}
			if !reflect.DeepEqual(got, tc.replies) {
				t.Errorf("replies to %v, want %v", got, tc.replies)
			}

			v := tt.TableValue(table, eventID)
			if tc.status == "" {
				if v != nil {
					t.Errorf("table value %+v, want none", v)
				}
				return
			}
			st, _ := v.(*schemas.ToolCallState)
			if st == nil {
				t.Fatalf("no table value for %s", eventID)
			}
			if st.Status != tc.status || st.Duplicates != tc.dups || st.Principal != alice {
				t.Errorf("table value = %+v, want %s with %d duplicates", st, tc.status, tc.dups)
			}
			if st.CallOffset != 0 {
				t.Errorf("table value has call offset %d, want 0 (the first call's)", st.CallOffset)
			}
			if tc.status == schemas.CallCompleted && (len(st.Waiters) != 0 || string(st.Response) != response || st.CompletedAt.IsZero()) {
				t.Errorf("completed value = %+v, want response, completion time and no waiters", st)
			}
			if tc.status == schemas.CallRunning {
				var want []schemas.Waiter
				for _, in := range tc.inputs {
					if w := (schemas.Waiter{Gateway: in.call.ReplyGateway, ReplyToken: in.call.ReplyToken}); w.Gateway != "" {
						want = append(want, w)
					}
				}
				if !reflect.DeepEqual(st.Waiters, want) {
					t.Errorf("running value has waiters %v, want %v", st.Waiters, want)
				}
			}
		})
	}
}
