package sessions_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors"
	"github.com/mcpstream/mcpstream/processors/processortest"
	"github.com/mcpstream/mcpstream/processors/sessions"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools"
	"github.com/mcpstream/mcpstream/tools/conformance"
)

// startSessions runs a sessions processor against tt until the test ends.
func startSessions(t *testing.T, tt *tester.Tester) streams.Topics {
	t.Helper()
	tr, err := tools.NewRegistry(conformance.New())
	if err != nil {
		t.Fatal(err)
	}
	processortest.Start(t, tt, func(opts []goka.ProcessorOption) (processortest.Runner, error) {
		return sessions.New(schemas.MustLoad(), tr, sessions.Config{ClientID: "sessions-test", Options: opts})
	})
	return streams.Topics{}
}

// nextReply returns the next message on the replies topic.
func nextReply(t *testing.T, q *tester.QueueTracker) (string, *schemas.ReplyEvent) {
	t.Helper()
	key, v, ok := q.Next()
	if !ok {
		t.Fatalf("no reply emitted")
	}
	r, ok := v.(*schemas.ReplyEvent)
	if !ok {
		t.Fatalf("reply topic holds %T", v)
	}
	return key, r
}

func noMore(t *testing.T, what string, q *tester.QueueTracker) {
	t.Helper()
	if key, v, ok := q.Next(); ok {
		t.Errorf("unexpected %s message key %q: %+v", what, key, v)
	}
}

func TestProcessorGraph(t *testing.T) {
	tt := tester.New(t)
	topics := startSessions(t, tt)
	table := goka.GroupTable(goka.Group(topics.SessionsGroup()))
	replies := tt.NewQueueTracker(topics.Replies())
	calls := tt.NewQueueTracker(topics.ToolCalls())

	const sess = "graph-session"
	reqEv := func(kind schemas.RequestKind, method, params, tok string) *schemas.RequestEvent {
		e := &schemas.RequestEvent{EventID: "ev-" + tok, Kind: kind, SessionID: sess, Principal: alice, Method: method,
			ReplyGateway: gw, ReplyToken: tok, ReceivedAt: now}
		if kind == schemas.KindRequest {
			e.RPCID = []byte(`"` + tok + `"`)
		}
		if params != "" {
			e.Params = []byte(params)
		}
		return e
	}
	session := func(t *testing.T) *schemas.SessionState {
		t.Helper()
		v := tt.TableValue(table, sess)
		if v == nil {
			t.Fatalf("no table value for %s", sess)
		}
		return v.(*schemas.SessionState)
	}

	// Steps run in order on one processor; each sees the table the previous
	// ones left. The processor reads the wall clock: the steps follow each
	// other within ActivityResolution, so a request that changes nothing but
	// the activity time writes nothing unless a step made the activity stale.
	// The tester numbers the requests topic's events 0, 1, ... in step order.
	steps := []struct {
		name string
		key  string // request topic key; default the session id
		ev   *schemas.RequestEvent
		// expectations
		written  schemas.SessionLifecycle // the step writes the table: this state at the step's offset; "": the table is unchanged
		offset   int64                    // the step's offset on the requests topic
		status   int                      // reply status; 0: no reply
		errCode  int
		result   func(t *testing.T, r map[string]any)
		job      *schemas.ToolJob // expected on the toolcalls topic
		setState *schemas.SessionState
	}{
		{name: "initialize", ev: reqEv(schemas.KindRequest, "initialize", `{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{}},"clientInfo":{"name":"c"}}`, "t0"),
			written: schemas.SessionInitializing, offset: 0, status: 200,
			result: func(t *testing.T, r map[string]any) {
				if r["protocolVersion"] != "2025-06-18" {
					t.Errorf("protocolVersion = %v", r["protocolVersion"])
				}
				if n := path(t, r, "serverInfo", "name"); n != processors.DefaultServerInfo.Name {
					t.Errorf("serverInfo.name = %v", n)
				}
			}},
		{name: "initialized", ev: reqEv(schemas.KindNotification, "notifications/initialized", "", "t1"),
			written: schemas.SessionActive, offset: 1, status: 202},
		{name: "tools/list lists the conformance tools, writes nothing", ev: reqEv(schemas.KindRequest, "tools/list", `{}`, "t2"),
			offset: 2, status: 200,
			result: func(t *testing.T, r map[string]any) {
				list, _ := r["tools"].([]any)
				var names []string
				for _, x := range list {
					names = append(names, path(t, x, "name").(string))
				}
				for _, want := range []string{conformance.ToolSimpleText, conformance.ToolWithProgress} {
					found := false
					for _, n := range names {
						found = found || n == want
					}
					if !found {
						t.Errorf("tools/list %v lacks %s", names, want)
					}
				}
			}},
		{name: "tools/call is forwarded, not answered, writes nothing",
			ev:     reqEv(schemas.KindRequest, "tools/call", `{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"pt"}}`, "t3"),
			offset: 3,
			job: &schemas.ToolJob{EventID: "ev-t3", SessionID: sess, Principal: alice, Tool: conformance.ToolWithProgress,
				Arguments: []byte(`{}`), ProgressToken: []byte(`"pt"`), ReplyGateway: gw, ReplyToken: "t3",
				ClientCapabilities: []byte(`{"elicitation":{}}`)}},
		{name: "tools/call of an unknown tool is answered", ev: reqEv(schemas.KindRequest, "tools/call", `{"name":"nope"}`, "t4"),
			offset: 4, status: 200, errCode: jsonrpc.CodeInvalidParams},
		{name: "second notifications/initialized writes nothing", ev: reqEv(schemas.KindNotification, "notifications/initialized", "", "t5"),
			offset: 5, status: 202},
		{name: "request without gateway emits no reply",
			ev: func() *schemas.RequestEvent {
				e := reqEv(schemas.KindRequest, "ping", "", "t6")
				e.ReplyGateway = ""
				return e
			}(),
			offset: 6},
		{name: "ping once the activity is stale writes it",
			setState: &schemas.SessionState{SessionID: sess, State: schemas.SessionActive, ProtocolVersion: "2025-06-18",
				Principal: alice, CreatedAt: now, LastActivity: time.Now().Add(-time.Minute), LastOffset: 1, Requests: 2},
			ev:      reqEv(schemas.KindRequest, "ping", "", "t7"),
			written: schemas.SessionActive, offset: 7, status: 200},
		{name: "ping right after writes nothing", ev: reqEv(schemas.KindRequest, "ping", "", "t8"),
			offset: 8, status: 200},
		{name: "replayed offset changes nothing but is answered",
			setState: &schemas.SessionState{SessionID: sess, State: schemas.SessionActive, ProtocolVersion: "2025-06-18",
				Principal: alice, CreatedAt: now, LastActivity: time.Now().Add(-time.Minute), LastOffset: 1000, Requests: 77},
			ev:     reqEv(schemas.KindRequest, "ping", "", "t9"),
			offset: 9, status: 200},
		{name: "stateless server/discover keyed by event id",
			key: "ev-stateless",
			ev: func() *schemas.RequestEvent {
				e := reqEv(schemas.KindRequest, "server/discover", `{}`, "t10")
				e.SessionID, e.EventID = "", "ev-stateless"
				return e
			}(),
			offset: 10, status: 200,
			result: func(t *testing.T, r map[string]any) {
				if r["resultType"] != "complete" {
					t.Errorf("resultType = %v", r["resultType"])
				}
			}},
		{name: "delete closes",
			setState: &schemas.SessionState{SessionID: sess, State: schemas.SessionActive, ProtocolVersion: "2025-06-18",
				Principal: alice, CreatedAt: now, LastActivity: time.Now(), LastOffset: 5, Requests: 6},
			ev:      reqEv(schemas.KindSessionDelete, "", "", "t11"),
			written: schemas.SessionClosed, offset: 11, status: 200},
		{name: "closed session is not found", ev: reqEv(schemas.KindRequest, "ping", "", "t12"),
			offset: 12, status: 404, errCode: jsonrpc.CodeSessionNotFound},
	}

	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.setState != nil {
				tt.SetTableValue(table, sess, s.setState)
			}
			key := s.key
			if key == "" {
				key = sess
			}
			var before *schemas.SessionState
			if v := tt.TableValue(table, sess); v != nil {
				before = v.(*schemas.SessionState)
			}
			start := time.Now().Truncate(time.Millisecond) // the table keeps milliseconds
			tt.Consume(topics.Requests(), key, s.ev)

			if s.key != "" {
				if v := tt.TableValue(table, s.key); v != nil {
					t.Errorf("stateless request stored a table value: %+v", v)
				}
			}
			if s.written == "" {
				var after *schemas.SessionState
				if v := tt.TableValue(table, sess); v != nil {
					after = v.(*schemas.SessionState)
				}
				if !reflect.DeepEqual(after, before) {
					t.Errorf("table value = %+v\nwant unchanged %+v", after, before)
				}
			} else {
				st := session(t)
				if st.State != s.written || st.LastOffset != s.offset || st.ProtocolVersion != "2025-06-18" || st.Principal != alice {
					t.Errorf("table value = %+v, want %s at offset %d", st, s.written, s.offset)
				}
				var want int64 = 1
				if before != nil {
					want = before.Requests + 1
				}
				if st.Requests != want {
					t.Errorf("Requests = %d, want %d", st.Requests, want)
				}
				if st.LastActivity.Before(start) {
					t.Errorf("LastActivity = %v, want the processing time (at or after %v)", st.LastActivity, start)
				}
			}

			if s.job != nil {
				key, v, ok := calls.Next()
				if !ok {
					t.Fatalf("no job on %s", topics.ToolCalls())
				}
				job := v.(*schemas.ToolJob)
				if key != s.job.EventID {
					t.Errorf("job key = %q, want the event id %q", key, s.job.EventID)
				}
				job.AcceptedAt = s.job.AcceptedAt // wall clock of the processor
				if !reflect.DeepEqual(job, s.job) {
					t.Errorf("job = %+v\nwant  %+v", job, s.job)
				}
			}
			noMore(t, "toolcalls", calls)

			if s.status == 0 {
				noMore(t, "reply", replies)
				return
			}
			key, r := nextReply(t, replies)
			if key != gw || r.Gateway != gw || r.ReplyToken != s.ev.ReplyToken || r.EventID != s.ev.EventID {
				t.Errorf("reply key %q addressed %q/%q/%q, want %q/%q/%q", key, r.Gateway, r.ReplyToken, r.EventID, gw, s.ev.ReplyToken, s.ev.EventID)
			}
			if r.HTTPStatus != s.status {
				t.Errorf("reply status = %d, want %d (message %s)", r.HTTPStatus, s.status, r.Message)
			}
			if r.Kind == schemas.ReplyResponse {
				b := decodeBody(t, r.Message)
				switch {
				case s.errCode != 0 && (b.Error == nil || b.Error.Code != s.errCode):
					t.Errorf("reply %s, want error %d", r.Message, s.errCode)
				case s.result != nil:
					s.result(t, b.Result)
				}
			}
			noMore(t, "reply", replies)
		})
	}
}
