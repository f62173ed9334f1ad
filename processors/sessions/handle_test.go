package sessions_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors"
	"github.com/mcpstream/mcpstream/processors/sessions"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/tools"
)

var (
	now     = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	earlier = now.Add(-time.Minute)
	// lastSeen is the fixture sessions' LastActivity: recent, so a request
	// that changes nothing else leaves the table alone.
	lastSeen = now.Add(-time.Second)
)

const (
	sid       = "sess-1"
	alice     = "bearer:alice"
	gw        = "gw-1"
	token     = "tok-1"
	eventID   = "ev-1"
	lastApply = int64(5) // LastOffset of the fixture states
	nextOff   = int64(9) // an offset never applied before
)

func testEnv() sessions.Env {
	list := []tools.Tool{
		{Name: "echo", Description: "echoes", InputSchema: json.RawMessage(`{"type":"object"}`)},
		{Name: "slow", InputSchema: json.RawMessage(`{"type":"object","properties":{}}`)},
	}
	return sessions.Env{
		Tools:  list,
		Server: processors.ServerInfo{Name: "mcpstream-test", Version: "9.9.9", Title: "Test"},
		Known: func(name string) bool {
			return slices.ContainsFunc(list, func(t tools.Tool) bool { return t.Name == name })
		},
	}
}

// ev builds a request event on the fixture session; opts adjust it.
func ev(kind schemas.RequestKind, method, params string, opts ...func(*schemas.RequestEvent)) *schemas.RequestEvent {
	e := &schemas.RequestEvent{EventID: eventID, Kind: kind, SessionID: sid, Principal: alice, Method: method,
		ReplyGateway: gw, ReplyToken: token, ReceivedAt: now}
	if kind == schemas.KindRequest {
		e.RPCID = []byte(`7`)
	}
	if params != "" {
		e.Params = []byte(params)
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func req(method, params string, opts ...func(*schemas.RequestEvent)) *schemas.RequestEvent {
	return ev(schemas.KindRequest, method, params, opts...)
}

func notif(method string, opts ...func(*schemas.RequestEvent)) *schemas.RequestEvent {
	return ev(schemas.KindNotification, method, "", opts...)
}

func stateless(e *schemas.RequestEvent) {
	e.SessionID = ""
	e.ProtocolVersion = processors.Version20260728
}
func principal(p string) func(*schemas.RequestEvent) {
	return func(e *schemas.RequestEvent) { e.Principal = p }
}
func header(v string) func(*schemas.RequestEvent) {
	return func(e *schemas.RequestEvent) { e.ProtocolVersion = v }
}

func session(state schemas.SessionLifecycle, mods ...func(*schemas.SessionState)) *schemas.SessionState {
	st := &schemas.SessionState{SessionID: sid, State: state, ProtocolVersion: processors.Version20251125,
		ClientInfo: []byte(`{"name":"c"}`), Principal: alice, CreatedAt: earlier, LastActivity: lastSeen,
		LastOffset: lastApply, Requests: 3}
	for _, m := range mods {
		m(st)
	}
	return st
}

// idle makes a session's last activity d before now.
func idle(d time.Duration) func(*schemas.SessionState) {
	return func(st *schemas.SessionState) { st.LastActivity = now.Add(-d) }
}

// stale is idle long enough for any request to write the activity time.
var stale = idle(sessions.ActivityResolution + time.Second)

// negotiated gives a session client capabilities and a log level.
func negotiated(st *schemas.SessionState) {
	st.ClientCapabilities = []byte(`{"elicitation":{}}`)
	st.LogLevel = "info"
}

// logLevel checks the state's log level on top of check.
func logLevel(level string, check func(*testing.T, *schemas.SessionState)) func(*testing.T, *schemas.SessionState) {
	return func(t *testing.T, st *schemas.SessionState) {
		t.Helper()
		check(t, st)
		if st.LogLevel != level {
			t.Errorf("LogLevel = %q, want %q", st.LogLevel, level)
		}
	}
}

// body is a decoded id-less reply body.
type body struct {
	Result map[string]any `json:"result"`
	Error  *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

func decodeBody(t *testing.T, msg []byte) body {
	t.Helper()
	var b body
	if err := json.Unmarshal(msg, &b); err != nil {
		t.Fatalf("reply message %q is not JSON: %v", msg, err)
	}
	if (b.Result == nil) == (b.Error == nil) {
		t.Fatalf("reply message %s must hold exactly one of result and error", msg)
	}
	return b
}

// path walks nested JSON objects.
func path(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("at %q: %T is not an object", k, v)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("missing key %q in %v", k, m)
		}
	}
	return v
}

type want struct {
	// reply
	noReply   bool
	status    int
	kind      schemas.ReplyKind // default RESPONSE
	errCode   int               // 0: a result (or no message for ACCEPTED)
	result    func(t *testing.T, r map[string]any)
	errData   func(t *testing.T, data json.RawMessage)
	replySess string // SessionID the reply carries (default: the event's)
	// state
	state func(t *testing.T, st *schemas.SessionState) // nil: Outcome.State must be nil
	// forward
	forward func(t *testing.T, job *schemas.ToolJob) // nil: Outcome.Forward must be nil
}

func wantState(state schemas.SessionLifecycle, requests int64) func(*testing.T, *schemas.SessionState) {
	return func(t *testing.T, st *schemas.SessionState) {
		t.Helper()
		if st.State != state {
			t.Errorf("state = %s, want %s", st.State, state)
		}
		if st.LastOffset != nextOff || !st.LastActivity.Equal(now) {
			t.Errorf("LastOffset/LastActivity = %d/%v, want %d/%v", st.LastOffset, st.LastActivity, nextOff, now)
		}
		if st.Requests != requests {
			t.Errorf("Requests = %d, want %d", st.Requests, requests)
		}
		if st.SessionID != sid || st.Principal != alice || st.ProtocolVersion != processors.Version20251125 || !st.CreatedAt.Equal(earlier) {
			t.Errorf("identity fields changed: %+v", st)
		}
	}
}

// wantTouched expects base with only the activity written: LastActivity
// now, LastOffset nextOff, one more request.
func wantTouched(base *schemas.SessionState) func(*testing.T, *schemas.SessionState) {
	return func(t *testing.T, st *schemas.SessionState) {
		t.Helper()
		w := *base
		w.LastActivity, w.LastOffset, w.Requests = now, nextOff, base.Requests+1
		if !reflect.DeepEqual(st, &w) {
			t.Errorf("state = %+v\nwant    %+v", st, &w)
		}
	}
}

func wantInitialized(version string) func(*testing.T, *schemas.SessionState) {
	return func(t *testing.T, st *schemas.SessionState) {
		t.Helper()
		w := &schemas.SessionState{SessionID: sid, State: schemas.SessionInitializing, ProtocolVersion: version,
			ClientInfo: []byte(`{"name":"client","version":"1"}`), ClientCapabilities: []byte(`{"roots":{}}`),
			Principal: alice, CreatedAt: now, LastActivity: now, LastOffset: nextOff, Requests: 1}
		if !reflect.DeepEqual(st, w) {
			t.Errorf("state = %+v\nwant    %+v", st, w)
		}
	}
}

func wantInitResult(version string) func(*testing.T, map[string]any) {
	return func(t *testing.T, r map[string]any) {
		t.Helper()
		if got := r["protocolVersion"]; got != version {
			t.Errorf("protocolVersion = %v, want %s", got, version)
		}
		if got := path(t, r, "serverInfo", "name"); got != "mcpstream-test" {
			t.Errorf("serverInfo.name = %v", got)
		}
		if got := path(t, r, "serverInfo", "version"); got != "9.9.9" {
			t.Errorf("serverInfo.version = %v", got)
		}
		path(t, r, "capabilities", "tools")
		if _, ok := r["instructions"]; ok {
			t.Errorf("instructions present although the server has none")
		}
	}
}

func wantTools(t *testing.T, r map[string]any) {
	t.Helper()
	list, ok := r["tools"].([]any)
	if !ok || len(list) != 2 {
		t.Fatalf("tools = %v, want the 2 tools of the env", r["tools"])
	}
	if n := path(t, list[0], "name"); n != "echo" {
		t.Errorf("tools[0].name = %v", n)
	}
	path(t, list[1], "inputSchema")
}

func forwardOf(tool, args, progress string, sessionID string, mods ...func(*schemas.ToolJob)) func(*testing.T, *schemas.ToolJob) {
	return func(t *testing.T, job *schemas.ToolJob) {
		t.Helper()
		w := &schemas.ToolJob{EventID: eventID, SessionID: sessionID, Principal: alice, Tool: tool,
			ReplyGateway: gw, ReplyToken: token, AcceptedAt: now}
		if args != "" {
			w.Arguments = []byte(args)
		}
		if progress != "" {
			w.ProgressToken = []byte(progress)
		}
		for _, m := range mods {
			m(w)
		}
		if !reflect.DeepEqual(job, w) {
			t.Errorf("forward = %+v\nwant      %+v", job, w)
		}
	}
}

func TestHandle(t *testing.T) {
	initReq := func(version string) *schemas.RequestEvent {
		b, _ := json.Marshal(map[string]any{"protocolVersion": version, "capabilities": map[string]any{"roots": map[string]any{}},
			"clientInfo": map[string]any{"name": "client", "version": "1"}})
		return req("initialize", string(b))
	}

	cases := []struct {
		name   string
		st     *schemas.SessionState
		ev     *schemas.RequestEvent
		offset int64
		want   want
	}{
		// initialize
		{name: "initialize keeps a known version", ev: initReq("2025-06-18"), offset: nextOff,
			want: want{status: 200, result: wantInitResult("2025-06-18"), state: wantInitialized("2025-06-18")}},
		{name: "initialize keeps the newest version", ev: initReq(processors.Version20251125), offset: nextOff,
			want: want{status: 200, result: wantInitResult(processors.Version20251125), state: wantInitialized(processors.Version20251125)}},
		{name: "initialize with unknown version offers the newest stateful one", ev: initReq("2024-01-01"), offset: nextOff,
			want: want{status: 200, result: wantInitResult(processors.StatefulVersions[0]), state: wantInitialized(processors.StatefulVersions[0])}},
		{name: "initialize with the stateless revision offers the newest stateful one", ev: initReq(processors.Version20260728), offset: nextOff,
			want: want{status: 200, result: wantInitResult(processors.Version20251125), state: wantInitialized(processors.Version20251125)}},
		{name: "initialize without protocolVersion", ev: req("initialize", `{"capabilities":{}}`), offset: nextOff,
			want: want{status: 400, errCode: jsonrpc.CodeInvalidParams}},
		{name: "initialize without params", ev: req("initialize", ""), offset: nextOff,
			want: want{status: 400, errCode: jsonrpc.CodeInvalidParams}},
		{name: "second initialize on an existing session", st: session(schemas.SessionActive), ev: initReq(processors.Version20251125), offset: nextOff,
			want: want{status: 400, errCode: jsonrpc.CodeInvalidRequest}},
		{name: "replayed initialize answers again from the state", st: session(schemas.SessionActive), ev: initReq("2025-06-18"), offset: lastApply,
			want: want{status: 200, result: wantInitResult(processors.Version20251125)}},

		// lifecycle notifications
		{name: "notifications/initialized activates", st: session(schemas.SessionInitializing), ev: notif("notifications/initialized"), offset: nextOff,
			want: want{status: 202, kind: schemas.ReplyAccepted, state: wantState(schemas.SessionActive, 4)}},
		{name: "other notification writes nothing", st: session(schemas.SessionInitializing), ev: notif("notifications/cancelled"), offset: nextOff,
			want: want{status: 202, kind: schemas.ReplyAccepted}},
		{name: "second notifications/initialized on an active session writes nothing", st: session(schemas.SessionActive),
			ev: notif("notifications/initialized"), offset: nextOff,
			want: want{status: 202, kind: schemas.ReplyAccepted}},
		{name: "client response is accepted, writes nothing", st: session(schemas.SessionActive), ev: ev(schemas.KindResponse, "", `{}`), offset: nextOff,
			want: want{status: 202, kind: schemas.ReplyAccepted}},
		{name: "SESSION_DELETE closes", st: session(schemas.SessionActive), ev: ev(schemas.KindSessionDelete, "", ""), offset: nextOff,
			want: want{status: 200, kind: schemas.ReplyAccepted, state: wantState(schemas.SessionClosed, 4)}},

		// requests
		{name: "ping writes nothing", st: session(schemas.SessionActive), ev: req("ping", ""), offset: nextOff,
			want: want{status: 200, result: func(t *testing.T, r map[string]any) {
				if len(r) != 0 {
					t.Errorf("ping result = %v, want {}", r)
				}
			}}},
		{name: "ping with matching MCP-Protocol-Version", st: session(schemas.SessionActive), ev: req("ping", "", header(processors.Version20251125)), offset: nextOff,
			want: want{status: 200, result: func(*testing.T, map[string]any) {}}},
		{name: "tools/list", st: session(schemas.SessionActive), ev: req("tools/list", `{}`), offset: nextOff,
			want: want{status: 200, result: wantTools}},
		{name: "tools/call forwards a job with arguments and progress token", st: session(schemas.SessionActive),
			ev:     req("tools/call", `{"name":"echo","arguments":{"x":1},"_meta":{"progressToken":"p-1"}}`),
			offset: nextOff,
			want:   want{noReply: true, forward: forwardOf("echo", `{"x":1}`, `"p-1"`, sid)}},
		{name: "tools/call with numeric progress token", st: session(schemas.SessionActive),
			ev:     req("tools/call", `{"name":"echo","arguments":{},"_meta":{"progressToken":42}}`),
			offset: nextOff,
			want:   want{noReply: true, forward: forwardOf("echo", `{}`, `42`, sid)}},
		{name: "tools/call without arguments or token", st: session(schemas.SessionActive),
			ev:     req("tools/call", `{"name":"slow"}`),
			offset: nextOff,
			want:   want{noReply: true, forward: forwardOf("slow", "", "", sid)}},
		{name: "tools/call with null arguments and null token", st: session(schemas.SessionActive),
			ev:     req("tools/call", `{"name":"slow","arguments":null,"_meta":{"progressToken":null}}`),
			offset: nextOff,
			want:   want{noReply: true, forward: forwardOf("slow", "", "", sid)}},
		{name: "tools/call missing name", st: session(schemas.SessionActive), ev: req("tools/call", `{"arguments":{}}`), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeInvalidParams}},
		{name: "tools/call empty name", st: session(schemas.SessionActive), ev: req("tools/call", `{"name":""}`), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeInvalidParams}},
		{name: "tools/call without params", st: session(schemas.SessionActive), ev: req("tools/call", ""), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeInvalidParams}},
		{name: "tools/call array arguments", st: session(schemas.SessionActive), ev: req("tools/call", `{"name":"echo","arguments":[1]}`), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeInvalidParams}},
		{name: "tools/call string arguments", st: session(schemas.SessionActive), ev: req("tools/call", `{"name":"echo","arguments":"x"}`), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeInvalidParams}},
		{name: "tools/call name not a string", st: session(schemas.SessionActive), ev: req("tools/call", `{"name":5}`), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeInvalidParams}},
		{name: "tools/call unknown tool", st: session(schemas.SessionActive), ev: req("tools/call", `{"name":"nope","arguments":{}}`), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeInvalidParams}},
		{name: "unknown method", st: session(schemas.SessionActive), ev: req("resources/list", `{}`), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeMethodNotFound}},
		{name: "logging/setLevel stores the level", st: session(schemas.SessionActive), ev: req("logging/setLevel", `{"level":"warning"}`), offset: nextOff,
			want: want{status: 200, result: func(t *testing.T, r map[string]any) {
				if len(r) != 0 {
					t.Errorf("result = %v, want {}", r)
				}
			}, state: logLevel("warning", wantState(schemas.SessionActive, 4))}},
		{name: "logging/setLevel replaces the level", st: session(schemas.SessionActive, negotiated), ev: req("logging/setLevel", `{"level":"debug"}`), offset: nextOff,
			want: want{status: 200, result: func(*testing.T, map[string]any) {}, state: logLevel("debug", wantState(schemas.SessionActive, 4))}},
		{name: "logging/setLevel with an unknown level writes nothing", st: session(schemas.SessionActive, negotiated), ev: req("logging/setLevel", `{"level":"verbose"}`), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeInvalidParams}},
		{name: "logging/setLevel without a level writes nothing", st: session(schemas.SessionActive), ev: req("logging/setLevel", `{}`), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeInvalidParams}},
		{name: "replayed logging/setLevel changes nothing", st: session(schemas.SessionActive, negotiated), ev: req("logging/setLevel", `{"level":"error"}`), offset: lastApply,
			want: want{status: 200, result: func(*testing.T, map[string]any) {}}},
		{name: "tools/call carries the session's capabilities and log level", st: session(schemas.SessionActive, negotiated),
			ev:     req("tools/call", `{"name":"echo","_meta":{"io.modelcontextprotocol/clientCapabilities":{"sampling":{}},"io.modelcontextprotocol/logLevel":"debug"}}`),
			offset: nextOff,
			want: want{noReply: true, forward: forwardOf("echo", "", "", sid, func(j *schemas.ToolJob) {
				j.ClientCapabilities = []byte(`{"elicitation":{}}`)
				j.LogLevel = "info"
			})}},
		{name: "request before notifications/initialized is served", st: session(schemas.SessionInitializing), ev: req("ping", ""), offset: nextOff,
			want: want{status: 200, result: func(*testing.T, map[string]any) {}}},

		// activity resolution: a request that changes nothing but the
		// activity time writes it only once it is ActivityResolution old
		{name: "ping right after activity writes nothing", st: session(schemas.SessionActive, idle(0)), ev: req("ping", ""), offset: nextOff,
			want: want{status: 200, result: func(*testing.T, map[string]any) {}}},
		{name: "ping just within the resolution writes nothing", st: session(schemas.SessionActive, idle(sessions.ActivityResolution-time.Millisecond)),
			ev: req("ping", ""), offset: nextOff,
			want: want{status: 200, result: func(*testing.T, map[string]any) {}}},
		{name: "ping exactly the resolution after activity writes it", st: session(schemas.SessionActive, idle(sessions.ActivityResolution)),
			ev: req("ping", ""), offset: nextOff,
			want: want{status: 200, result: func(*testing.T, map[string]any) {},
				state: wantTouched(session(schemas.SessionActive, idle(sessions.ActivityResolution)))}},
		{name: "ping 11 s after activity writes the new activity time", st: session(schemas.SessionActive, negotiated, stale), ev: req("ping", ""), offset: nextOff,
			want: want{status: 200, result: func(*testing.T, map[string]any) {},
				state: wantTouched(session(schemas.SessionActive, negotiated, stale))}},
		{name: "request before notifications/initialized, stale, writes the activity time", st: session(schemas.SessionInitializing, stale),
			ev: req("ping", ""), offset: nextOff,
			want: want{status: 200, result: func(*testing.T, map[string]any) {},
				state: wantTouched(session(schemas.SessionInitializing, stale))}},
		{name: "tools/list, stale, writes the activity time", st: session(schemas.SessionActive, stale), ev: req("tools/list", `{}`), offset: nextOff,
			want: want{status: 200, result: wantTools, state: wantTouched(session(schemas.SessionActive, stale))}},
		{name: "tools/call, stale, forwards and writes the activity time", st: session(schemas.SessionActive, negotiated, stale),
			ev: req("tools/call", `{"name":"echo","arguments":{"x":1}}`), offset: nextOff,
			want: want{noReply: true, state: wantTouched(session(schemas.SessionActive, negotiated, stale)),
				forward: forwardOf("echo", `{"x":1}`, "", sid, func(j *schemas.ToolJob) {
					j.ClientCapabilities = []byte(`{"elicitation":{}}`)
					j.LogLevel = "info"
				})}},
		{name: "tools/call unknown tool, stale, writes the activity time", st: session(schemas.SessionActive, stale),
			ev: req("tools/call", `{"name":"nope"}`), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeInvalidParams, state: wantTouched(session(schemas.SessionActive, stale))}},
		{name: "unknown method, stale, writes the activity time", st: session(schemas.SessionActive, stale), ev: req("resources/list", `{}`), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeMethodNotFound, state: wantTouched(session(schemas.SessionActive, stale))}},
		{name: "logging/setLevel with an unknown level, stale, keeps the level", st: session(schemas.SessionActive, negotiated, stale),
			ev: req("logging/setLevel", `{"level":"verbose"}`), offset: nextOff,
			want: want{status: 200, errCode: jsonrpc.CodeInvalidParams, state: wantTouched(session(schemas.SessionActive, negotiated, stale))}},
		{name: "other notification, stale, writes the activity time", st: session(schemas.SessionActive, stale), ev: notif("notifications/cancelled"), offset: nextOff,
			want: want{status: 202, kind: schemas.ReplyAccepted, state: wantTouched(session(schemas.SessionActive, stale))}},
		{name: "second notifications/initialized, stale, writes only the activity time", st: session(schemas.SessionActive, stale),
			ev: notif("notifications/initialized"), offset: nextOff,
			want: want{status: 202, kind: schemas.ReplyAccepted, state: wantTouched(session(schemas.SessionActive, stale))}},
		{name: "client response, stale, writes the activity time", st: session(schemas.SessionActive, stale), ev: ev(schemas.KindResponse, "", `{}`), offset: nextOff,
			want: want{status: 202, kind: schemas.ReplyAccepted, state: wantTouched(session(schemas.SessionActive, stale))}},
		{name: "replayed ping, stale, writes nothing", st: session(schemas.SessionActive, stale), ev: req("ping", ""), offset: lastApply,
			want: want{status: 200, result: func(*testing.T, map[string]any) {}}},
		// lifecycle changes are written however recent the activity
		{name: "first notifications/initialized right after activity is written", st: session(schemas.SessionInitializing, idle(0)),
			ev: notif("notifications/initialized"), offset: nextOff,
			want: want{status: 202, kind: schemas.ReplyAccepted, state: wantState(schemas.SessionActive, 4)}},
		{name: "logging/setLevel right after activity is written", st: session(schemas.SessionActive, idle(0)),
			ev: req("logging/setLevel", `{"level":"error"}`), offset: nextOff,
			want: want{status: 200, result: func(*testing.T, map[string]any) {}, state: logLevel("error", wantState(schemas.SessionActive, 4))}},
		{name: "SESSION_DELETE right after activity is written", st: session(schemas.SessionActive, idle(0)), ev: ev(schemas.KindSessionDelete, "", ""), offset: nextOff,
			want: want{status: 200, kind: schemas.ReplyAccepted, state: wantState(schemas.SessionClosed, 4)}},

		// session not usable
		{name: "missing session", ev: req("ping", ""), offset: nextOff,
			want: want{status: 404, errCode: jsonrpc.CodeSessionNotFound}},
		{name: "closed session", st: session(schemas.SessionClosed), ev: req("ping", ""), offset: nextOff,
			want: want{status: 404, errCode: jsonrpc.CodeSessionNotFound}},
		{name: "session of another principal", st: session(schemas.SessionActive), ev: req("tools/call", `{"name":"echo"}`, principal("bearer:mallory")), offset: nextOff,
			want: want{status: 404, errCode: jsonrpc.CodeSessionNotFound}},
		{name: "notification on missing session", ev: notif("notifications/initialized"), offset: nextOff,
			want: want{status: 404, kind: schemas.ReplyAccepted}},
		{name: "delete of closed session", st: session(schemas.SessionClosed), ev: ev(schemas.KindSessionDelete, "", ""), offset: nextOff,
			want: want{status: 404, kind: schemas.ReplyAccepted}},
		{name: "MCP-Protocol-Version mismatch", st: session(schemas.SessionActive), ev: req("ping", "", header("2025-06-18")), offset: nextOff,
			want: want{status: 400, errCode: jsonrpc.CodeInvalidRequest}},

		// replay: offset at or below LastOffset changes nothing but is answered
		{name: "replayed ping", st: session(schemas.SessionActive), ev: req("ping", ""), offset: lastApply,
			want: want{status: 200, result: func(*testing.T, map[string]any) {}}},
		{name: "replayed notifications/initialized", st: session(schemas.SessionInitializing), ev: notif("notifications/initialized"), offset: lastApply - 1,
			want: want{status: 202, kind: schemas.ReplyAccepted}},
		{name: "replayed delete", st: session(schemas.SessionActive), ev: ev(schemas.KindSessionDelete, "", ""), offset: lastApply,
			want: want{status: 200, kind: schemas.ReplyAccepted}},
		{name: "replayed tools/call forwards again", st: session(schemas.SessionActive), ev: req("tools/call", `{"name":"echo","arguments":{"a":"b"}}`), offset: 0,
			want: want{noReply: true, forward: forwardOf("echo", `{"a":"b"}`, "", sid)}},

		// stateless (2026-07-28): no session, no state
		{name: "stateless server/discover", ev: req("server/discover", `{}`, stateless), offset: nextOff,
			want: want{status: 200, replySess: "", result: func(t *testing.T, r map[string]any) {
				if r["resultType"] != "complete" {
					t.Errorf("resultType = %v", r["resultType"])
				}
				vs, _ := r["supportedVersions"].([]any)
				for _, v := range append([]string{processors.Version20260728}, processors.StatefulVersions...) {
					if !slices.Contains(vs, any(v)) {
						t.Errorf("supportedVersions %v lacks %s", vs, v)
					}
				}
				path(t, r, "capabilities", "tools")
				if n := path(t, r, "_meta", "io.modelcontextprotocol/serverInfo", "name"); n != "mcpstream-test" {
					t.Errorf("_meta serverInfo name = %v", n)
				}
				if r["ttlMs"] != float64(60000) || r["cacheScope"] != "public" {
					t.Errorf("ttlMs/cacheScope = %v/%v", r["ttlMs"], r["cacheScope"])
				}
			}}},
		{name: "stateless tools/list", ev: req("tools/list", `{}`, stateless), offset: nextOff,
			want: want{status: 200, replySess: "", result: func(t *testing.T, r map[string]any) {
				wantTools(t, r)
				if r["resultType"] != "complete" || r["ttlMs"] != float64(60000) || r["cacheScope"] != "public" {
					t.Errorf("resultType/ttlMs/cacheScope = %v/%v/%v", r["resultType"], r["ttlMs"], r["cacheScope"])
				}
				if n := path(t, r, "_meta", "io.modelcontextprotocol/serverInfo", "name"); n != "mcpstream-test" {
					t.Errorf("_meta serverInfo name = %v", n)
				}
			}}},
		{name: "stateless ping is gone", ev: req("ping", "", stateless), offset: nextOff,
			want: want{status: 404, replySess: "", errCode: jsonrpc.CodeMethodNotFound}},
		{name: "stateless initialize is gone", ev: req("initialize", `{"protocolVersion":"2025-11-25"}`, stateless), offset: nextOff,
			want: want{status: 404, replySess: "", errCode: jsonrpc.CodeMethodNotFound}},
		{name: "stateless tools/call forwards without session", ev: req("tools/call", `{"name":"echo","arguments":{"x":2},"_meta":{"progressToken":1}}`, stateless), offset: nextOff,
			want: want{noReply: true, forward: forwardOf("echo", `{"x":2}`, `1`, "")}},
		{name: "stateless tools/call carries _meta capabilities and log level",
			ev:     req("tools/call", `{"name":"echo","_meta":{"io.modelcontextprotocol/clientCapabilities":{"sampling":{}},"io.modelcontextprotocol/logLevel":"notice"}}`, stateless),
			offset: nextOff,
			want: want{noReply: true, forward: forwardOf("echo", "", "", "", func(j *schemas.ToolJob) {
				j.ClientCapabilities = []byte(`{"sampling":{}}`)
				j.LogLevel = "notice"
			})}},
		{name: "stateless tools/call drops an unknown log level",
			ev:     req("tools/call", `{"name":"echo","_meta":{"io.modelcontextprotocol/clientCapabilities":null,"io.modelcontextprotocol/logLevel":"loud"}}`, stateless),
			offset: nextOff,
			want:   want{noReply: true, forward: forwardOf("echo", "", "", "")}},
		{name: "stateless tools/call unknown tool", ev: req("tools/call", `{"name":"nope"}`, stateless), offset: nextOff,
			want: want{status: 200, replySess: "", errCode: jsonrpc.CodeInvalidParams}},
		{name: "stateless notification is accepted", ev: notif("notifications/cancelled", stateless), offset: nextOff,
			want: want{status: 202, replySess: "", kind: schemas.ReplyAccepted}},
		{name: "stateless ignores any table value", st: session(schemas.SessionClosed), ev: req("tools/list", `{}`, stateless), offset: 0,
			want: want{status: 200, replySess: "", result: wantTools}},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before schemas.SessionState
			if tc.st != nil {
				before = *tc.st
			}
			if tc.ev.SessionID != "" && tc.want.replySess == "" {
				tc.want.replySess = tc.ev.SessionID
			}
			out := sessions.Handle(testEnv(), tc.st, tc.ev, tc.offset, now)

			if tc.st != nil && !reflect.DeepEqual(*tc.st, before) {
				t.Errorf("Handle modified the input state:\n got %+v\nwant %+v", *tc.st, before)
			}
			checkReply(t, out.Reply, tc.ev, tc.want)
			switch {
			case tc.want.state == nil && out.State != nil:
				t.Errorf("state = %+v, want unchanged (nil)", out.State)
			case tc.want.state != nil && out.State == nil:
				t.Errorf("state = nil, want a new state")
			case tc.want.state != nil:
				if out.State == tc.st {
					t.Errorf("new state aliases the input state")
				}
				tc.want.state(t, out.State)
			}
			switch {
			case tc.want.forward == nil && out.Forward != nil:
				t.Errorf("forward = %+v, want none", out.Forward)
			case tc.want.forward != nil && out.Forward == nil:
				t.Errorf("forward = nil, want a job")
			case tc.want.forward != nil:
				tc.want.forward(t, out.Forward)
			}
		})
	}
}

func checkReply(t *testing.T, r *schemas.ReplyEvent, e *schemas.RequestEvent, w want) {
	t.Helper()
	if w.noReply {
		if r != nil {
			t.Errorf("reply = %+v (message %s), want none", r, r.Message)
		}
		return
	}
	if r == nil {
		t.Fatalf("reply = nil, want one")
	}
	kind := w.kind
	if kind == "" {
		kind = schemas.ReplyResponse
	}
	if r.Kind != kind || r.HTTPStatus != w.status {
		t.Errorf("reply kind/status = %s/%d, want %s/%d (message %s)", r.Kind, r.HTTPStatus, kind, w.status, r.Message)
	}
	if r.Gateway != e.ReplyGateway || r.ReplyToken != e.ReplyToken || r.EventID != e.EventID || !r.ProducedAt.Equal(now) {
		t.Errorf("reply addressing = %q/%q/%q/%v, want %q/%q/%q/%v", r.Gateway, r.ReplyToken, r.EventID, r.ProducedAt,
			e.ReplyGateway, e.ReplyToken, e.EventID, now)
	}
	if r.SessionID != w.replySess {
		t.Errorf("reply session = %q, want %q", r.SessionID, w.replySess)
	}
	if kind == schemas.ReplyAccepted {
		if r.Message != nil {
			t.Errorf("accepted reply carries a message: %s", r.Message)
		}
		return
	}
	b := decodeBody(t, r.Message)
	if bytes.Contains(r.Message, []byte(`"jsonrpc"`)) || bytes.Contains(r.Message, []byte(`"id"`)) {
		t.Errorf("reply message %s must be id-less (the gateway composes the envelope)", r.Message)
	}
	if w.errCode != 0 {
		if b.Error == nil {
			t.Fatalf("reply = %s, want error %d", r.Message, w.errCode)
		}
		if b.Error.Code != w.errCode || b.Error.Message == "" {
			t.Errorf("error = %d %q, want %d", b.Error.Code, b.Error.Message, w.errCode)
		}
		if w.errData != nil {
			w.errData(t, b.Error.Data)
		}
		return
	}
	if b.Result == nil {
		t.Fatalf("reply = %s, want a result", r.Message)
	}
	if w.result != nil {
		w.result(t, b.Result)
	}
}

func TestHandleInstructions(t *testing.T) {
	env := testEnv()
	env.Server.Instructions = "be nice"
	for _, tc := range []struct {
		name string
		ev   *schemas.RequestEvent
	}{
		{"initialize", req("initialize", `{"protocolVersion":"2025-11-25"}`)},
		{"server/discover", req("server/discover", `{}`, stateless)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := sessions.Handle(env, nil, tc.ev, 0, now)
			if out.Reply == nil {
				t.Fatal("no reply")
			}
			b := decodeBody(t, out.Reply.Message)
			if b.Result["instructions"] != "be nice" {
				t.Errorf("instructions = %v, want %q", b.Result["instructions"], "be nice")
			}
		})
	}
}

// TestHandleLifecycle drives one session through its whole life the way the
// processor does: each outcome's state (when there is one) feeds the next
// event, the event at index i has offset i and arrives at its at.
func TestHandleLifecycle(t *testing.T) {
	env := testEnv()
	t0 := now
	var st *schemas.SessionState
	steps := []struct {
		name    string
		ev      *schemas.RequestEvent
		offset  int64         // default: the step's index
		at      time.Duration // since t0
		status  int           // 0: no reply (a forwarded tools/call)
		forward bool
		// written: the table value after the step (nil: none written).
		state    schemas.SessionLifecycle
		requests int64
	}{
		{name: "initialize", ev: req("initialize", `{"protocolVersion":"2025-11-25"}`), at: 0, status: 200,
			state: schemas.SessionInitializing, requests: 1},
		{name: "initialized", ev: notif("notifications/initialized"), at: time.Second, status: 202,
			state: schemas.SessionActive, requests: 2},
		{name: "ping", ev: req("ping", ""), at: 2 * time.Second, status: 200},
		{name: "tools/list", ev: req("tools/list", `{}`), at: 3 * time.Second, status: 200},
		{name: "tools/call", ev: req("tools/call", `{"name":"echo"}`), at: 5 * time.Second, forward: true},
		{name: "ping once the activity is stale", ev: req("ping", ""), at: 12 * time.Second, status: 200,
			state: schemas.SessionActive, requests: 3},
		{name: "redelivered tools/call forwards again, writes nothing", ev: req("tools/call", `{"name":"echo"}`), offset: 4,
			at: 12 * time.Second, forward: true},
		{name: "initialized again", ev: notif("notifications/initialized"), at: 13 * time.Second, status: 202},
		{name: "logging/setLevel", ev: req("logging/setLevel", `{"level":"info"}`), at: 14 * time.Second, status: 200,
			state: schemas.SessionActive, requests: 4},
		{name: "ping within the resolution of the level change", ev: req("ping", ""), at: 23 * time.Second, status: 200},
		{name: "delete", ev: ev(schemas.KindSessionDelete, "", ""), at: 24 * time.Second, status: 200,
			state: schemas.SessionClosed, requests: 5},
		{name: "ping after delete", ev: req("ping", ""), at: time.Minute, status: 404},
		{name: "initialize again", ev: req("initialize", `{"protocolVersion":"2025-11-25"}`), at: time.Minute, status: 400},
	}
	for i, s := range steps {
		offset := s.offset
		if offset == 0 {
			offset = int64(i)
		}
		ok := t.Run(s.name, func(t *testing.T) {
			at := t0.Add(s.at)
			out := sessions.Handle(env, st, s.ev, offset, at)
			switch {
			case s.status == 0 && out.Reply != nil:
				t.Errorf("reply = %+v, want none", out.Reply)
			case s.status != 0 && (out.Reply == nil || out.Reply.HTTPStatus != s.status):
				t.Errorf("reply = %+v, want status %d", out.Reply, s.status)
			}
			if (out.Forward != nil) != s.forward {
				t.Errorf("forward = %+v, want one: %v", out.Forward, s.forward)
			}
			if s.state == "" {
				if out.State != nil {
					t.Errorf("state written: %+v", out.State)
				}
				return
			}
			if out.State == nil || out.State.State != s.state || out.State.LastOffset != offset || out.State.Requests != s.requests ||
				!out.State.LastActivity.Equal(at) {
				t.Errorf("state = %+v, want %s at offset %d with %d requests, last active %v", out.State, s.state, offset, s.requests, at)
			}
			if out.State != nil {
				st = out.State
			}
		})
		if !ok {
			t.FailNow() // later steps depend on this one's state
		}
	}
	if st.LogLevel != "info" || !st.CreatedAt.Equal(t0) {
		t.Errorf("final state = %+v, want log level info, created at %v", st, t0)
	}
}
