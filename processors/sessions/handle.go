package sessions

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors"
	"github.com/mcpstream/mcpstream/processors/mrtr"
	"github.com/mcpstream/mcpstream/processors/notify"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools"
)

// Outcome is what one request event leads to.
type Outcome struct {
	// State is the new session value; nil leaves the table unchanged.
	State *schemas.SessionState
	// Forward is a tools/call to hand to the toolcalls group.
	Forward *schemas.ToolJob
	// Reply is sent to the waiting gateway (if any); nil when the reply
	// will come from elsewhere (tool calls).
	Reply *schemas.ReplyEvent
	// Cancel is a control for the toolcalls group: a cancellation of a
	// running call, or a task query.
	Control *schemas.ToolControl
	// Delete removes the session from the table (idle expiry, expiry.go).
	Delete bool
}

// Env is what Handle needs besides the event and the state.
type Env struct {
	// Tools is the whole tool list, sorted by name (tools/list pages it).
	Tools  []tools.Tool
	Server processors.ServerInfo
	// Known reports whether a tool name exists.
	Known func(name string) bool
	// TaskSupport reports a tool's execution.taskSupport; nil: forbidden.
	TaskSupport func(name string) string
	// Escalates reports a tool that makes its calls tasks itself
	// (tools.MetaEscalates); nil: none does.
	Escalates func(name string) bool
	// Catalog serves resources, prompts and completion (catalog.go). Nil:
	// those methods are unknown (-32601) and not advertised.
	Catalog Catalog
	// PageSize is the most entries of one list page. Zero: DefaultPageSize.
	PageSize int
	// Cursors signs and checks list cursors. Nil: the built-in key.
	Cursors *Cursors
	// States signs and checks 2026-07-28 requestState (mrtr.go). Nil: the
	// built-in key.
	States *mrtr.Signer
	// Ctx bounds catalog calls (the message's context). Nil: Background.
	Ctx context.Context
	// IdleTimeout ends sessions unused for longer (expiry.go). Zero: never.
	IdleTimeout time.Duration
	// Notifications: gateways deliver list changes and resource updates
	// (processors/notify), so the capabilities promising them are
	// advertised (subscriptions.go).
	Notifications bool
}

// Handle decides what a request event does to a session. offset is the
// event's offset in its partition: an event at or below the state's
// LastOffset was applied before a crash (goka is at-least-once), so it
// changes nothing, but it is still answered because its first answer may
// not have left.
func Handle(env Env, st *schemas.SessionState, ev *schemas.RequestEvent, offset int64, now time.Time) Outcome {
	if ev.SessionID == "" {
		return handleStateless(env, ev, now)
	}
	replay := st != nil && offset <= st.LastOffset
	reply := func(status int, body []byte) *schemas.ReplyEvent {
		return &schemas.ReplyEvent{Gateway: ev.ReplyGateway, ReplyToken: ev.ReplyToken, EventID: ev.EventID,
			Kind: schemas.ReplyResponse, HTTPStatus: status, SessionID: ev.SessionID, Message: body, ProducedAt: now}
	}
	accepted := func(status int) *schemas.ReplyEvent {
		r := reply(status, nil)
		r.Kind = schemas.ReplyAccepted
		return r
	}
	fail := func(status int, e *jsonrpc.Error) Outcome {
		if ev.Kind != schemas.KindRequest {
			// A notification has no id to answer; the status alone tells.
			return Outcome{Reply: accepted(status)}
		}
		return Outcome{Reply: reply(status, jsonrpc.ErrorBody(e))}
	}

	if ev.Kind == schemas.KindRequest && ev.Method == "initialize" {
		if st != nil && !replay {
			return fail(400, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "session %s is already initialized", ev.SessionID))
		}
		var p struct {
			ProtocolVersion string          `json:"protocolVersion"`
			Capabilities    json.RawMessage `json:"capabilities"`
			ClientInfo      json.RawMessage `json:"clientInfo"`
		}
		if err := json.Unmarshal(orEmpty(ev.Params), &p); err != nil || p.ProtocolVersion == "" {
			return fail(400, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "initialize needs params.protocolVersion"))
		}
		if len(p.ClientInfo)+len(p.Capabilities) > MaxClientDescriptionBytes {
			// Every tool job of the session carries the capabilities; an
			// oversized set would make jobs the log cannot hold.
			return fail(400, jsonrpc.Errorf(jsonrpc.CodeInvalidParams,
				"clientInfo and capabilities take %d bytes, more than %d", len(p.ClientInfo)+len(p.Capabilities), MaxClientDescriptionBytes))
		}
		next := st
		if !replay {
			version := p.ProtocolVersion
			if !slices.Contains(processors.StatefulVersions, version) {
				version = processors.StatefulVersions[0]
			}
			next = &schemas.SessionState{SessionID: ev.SessionID, State: schemas.SessionInitializing,
				ProtocolVersion: version, ClientInfo: p.ClientInfo, ClientCapabilities: p.Capabilities,
				Principal: ev.Principal, CreatedAt: now, LastActivity: now, LastOffset: offset, Requests: 1}
		}
		body, err := jsonrpc.ResultBody(initializeResult(env, next.ProtocolVersion))
		if err != nil {
			return fail(500, jsonrpc.Errorf(jsonrpc.CodeInternalError, "%v", err))
		}
		out := Outcome{Reply: reply(200, body)}
		if !replay {
			out.State = next
		}
		return out
	}

	// Every other message needs a live session bound to the same principal;
	// a session of someone else looks exactly like a missing one.
	if st == nil || st.State == schemas.SessionClosed || st.Principal != ev.Principal {
		return fail(404, jsonrpc.Errorf(jsonrpc.CodeSessionNotFound, "session not found"))
	}
	if expired(env, st, now) {
		o := fail(404, jsonrpc.Errorf(jsonrpc.CodeSessionNotFound, "session not found"))
		o.Delete = true
		return o
	}
	if ev.Kind == schemas.KindNotification && ev.Method == notify.CheckSubscription {
		return resourceCheck(st, ev, now)
	}
	if ev.ProtocolVersion != "" && ev.ProtocolVersion != st.ProtocolVersion {
		return fail(400, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"MCP-Protocol-Version %q does not match the session's negotiated version %q", ev.ProtocolVersion, st.ProtocolVersion))
	}
	var next *schemas.SessionState
	if !replay {
		cp := *st
		cp.LastActivity, cp.LastOffset = now, offset
		cp.Requests++
		next = &cp
	}
	// Most requests change nothing but the activity time. Writing the table
	// for each would add a Kafka record to every call; the activity time is
	// only needed to within ActivityResolution (idle expiry).
	keep := func(o Outcome, mutated bool) Outcome {
		if !mutated && o.State != nil && now.Sub(st.LastActivity) < env.activityResolution() {
			o.State = nil
		}
		return o
	}

	switch ev.Kind {
	case schemas.KindSessionDelete:
		if next != nil {
			next.State = schemas.SessionClosed
		}
		return Outcome{State: next, Reply: accepted(200)}
	case schemas.KindNotification:
		mutated := false
		if ev.Method == "notifications/initialized" && next != nil && st.State != schemas.SessionActive {
			next.State = schemas.SessionActive
			mutated = true
		}
		out := Outcome{State: next, Reply: accepted(202)}
		if ev.Method == "notifications/cancelled" && st != nil {
			out.Control = cancelControl(ev, now)
		}
		// Other notifications (progress, roots/list_changed) are accepted;
		// unknown ones are ignored as the spec asks.
		return keep(out, mutated)
	case schemas.KindResponse:
		return keep(Outcome{State: next, Reply: accepted(202)}, false)
	}
	mutated := false

	out := Outcome{State: next}
	if body, changed, ok := subscription(env, st, next, ev); ok {
		out.Reply = reply(200, body)
		return keep(out, changed)
	}
	switch ev.Method {
	case "ping":
		out.Reply = reply(200, []byte(`{"result":{}}`))
	case "tools/list":
		out.Reply = reply(toolsList(env, ev, false))
	case "logging/setLevel":
		var p struct {
			Level string `json:"level"`
		}
		if err := json.Unmarshal(orEmpty(ev.Params), &p); err != nil || !processors.ValidLogLevel(p.Level) {
			out.Reply = reply(200, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid log level %q", p.Level)))
			return keep(out, false)
		}
		if next != nil {
			next.LogLevel = p.Level
			mutated = true
		}
		out.Reply = reply(200, []byte(`{"result":{}}`))
	case "tools/call":
		job, e := toolJob(env, ev, now)
		if e == nil {
			e = checkRequired(env, job)
		}
		if e != nil {
			out.Reply = reply(200, jsonrpc.ErrorBody(e))
			return keep(out, false)
		}
		// The session's view applies to every call of it: capabilities from
		// initialize, the level from logging/setLevel.
		job.ClientCapabilities = st.ClientCapabilities
		job.LogLevel = st.LogLevel
		if e := sessionTask(env, ev, job); e != nil {
			out.Reply = reply(200, jsonrpc.ErrorBody(e))
			return keep(out, false)
		}
		out.Forward = job
	case "tasks/get", "tasks/result", "tasks/cancel":
		var p struct {
			TaskID *string `json:"taskId"`
		}
		if err := json.Unmarshal(orEmpty(ev.Params), &p); err != nil || p.TaskID == nil || *p.TaskID == "" {
			out.Reply = reply(200, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s needs params.taskId", ev.Method)))
			return keep(out, false)
		}
		out.Control = &schemas.ToolControl{EventID: *p.TaskID, Kind: schemas.ControlQuery, Method: ev.Method, Principal: ev.Principal,
			SessionID: ev.SessionID, ReplyGateway: ev.ReplyGateway, ReplyToken: ev.ReplyToken, ProducedAt: now}
	default:
		if status, body, ok := serveCatalog(env, ev, false); ok {
			out.Reply = reply(status, body)
			break
		}
		out.Reply = reply(200, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method not found: %s", ev.Method)))
	}
	return keep(out, mutated)
}

// ActivityResolution is how stale a session's LastActivity may get before a
// request that changes nothing else writes it.
const ActivityResolution = 10 * time.Second

func handleStateless(env Env, ev *schemas.RequestEvent, now time.Time) Outcome {
	reply := func(status int, body []byte) Outcome {
		return Outcome{Reply: &schemas.ReplyEvent{Gateway: ev.ReplyGateway, ReplyToken: ev.ReplyToken, EventID: ev.EventID,
			Kind: schemas.ReplyResponse, HTTPStatus: status, Message: body, ProducedAt: now}}
	}
	if ev.Kind != schemas.KindRequest {
		return Outcome{Reply: &schemas.ReplyEvent{Gateway: ev.ReplyGateway, ReplyToken: ev.ReplyToken, EventID: ev.EventID,
			Kind: schemas.ReplyAccepted, HTTPStatus: 202, ProducedAt: now}}
	}
	result := func(v any) Outcome {
		body, err := jsonrpc.ResultBody(v)
		if err != nil {
			return reply(500, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInternalError, "%v", err)))
		}
		return reply(200, body)
	}
	switch ev.Method {
	case "server/discover":
		return result(discoverResult(env))
	case "tools/list":
		return reply(toolsList(env, ev, true))
	case "tools/call":
		job, e := toolJob(env, ev, now)
		if e == nil {
			e = checkRequired(env, job)
		}
		if e == nil {
			e = checkParamHeaders(env, ev, job)
		}
		if e == nil {
			e = attachRetry(env, ev, job)
		}
		if e != nil {
			return reply(200, jsonrpc.ErrorBody(e))
		}
		// 2026-07-28 declares capabilities and the log level per request.
		var p struct {
			Meta struct {
				Caps     json.RawMessage `json:"io.modelcontextprotocol/clientCapabilities"`
				LogLevel string          `json:"io.modelcontextprotocol/logLevel"`
			} `json:"_meta"`
		}
		_ = json.Unmarshal(orEmpty(ev.Params), &p)
		job.ClientCapabilities = nonNull(p.Meta.Caps)
		if processors.ValidLogLevel(p.Meta.LogLevel) {
			job.LogLevel = p.Meta.LogLevel
		}
		support := tools.TaskForbidden
		if env.TaskSupport != nil {
			support = env.TaskSupport(job.Tool)
		}
		switch {
		case support == tools.TaskForbidden:
		case tools.DeclaresTasks(p.Meta.Caps) && env.Escalates != nil && env.Escalates(job.Tool):
			// The tool turns its call into a task itself when ready.
		case tools.DeclaresTasks(p.Meta.Caps):
			// The server decides (tasks extension): every call of a
			// task-supporting tool from a client that can poll becomes a
			// task, so a slow tool never holds an HTTP request open.
			job.Task = true
			job.TaskTTLMs = DefaultTaskTTLMs
		case support == tools.TaskRequired:
			return reply(200, jsonrpc.ErrorBody(missingTasksExtension(job.Tool)))
		}
		return Outcome{Forward: job}
	case "tasks/get", "tasks/update", "tasks/cancel":
		return tasksRequest(ev, now, reply)
	}
	if status, body, ok := serveCatalog(env, ev, true); ok {
		return reply(status, body)
	}
	// Removed or unknown methods: 404 distinguishes "not here" from a
	// missing endpoint, as 2026-07-28 asks.
	return reply(404, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method not found: %s", ev.Method)))
}

func toolJob(env Env, ev *schemas.RequestEvent, now time.Time) (*schemas.ToolJob, *jsonrpc.Error) {
	var p struct {
		Name      *string         `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
		Meta      struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(orEmpty(ev.Params), &p); err != nil {
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid tools/call params: %v", err)
	}
	if p.Name == nil || *p.Name == "" {
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "tools/call needs params.name")
	}
	if len(p.Arguments) > 0 && string(p.Arguments) != "null" && p.Arguments[0] != '{' {
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "tools/call params.arguments must be an object")
	}
	if !env.Known(*p.Name) {
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "unknown tool: %s", *p.Name)
	}
	var token []byte
	if len(p.Meta.ProgressToken) > 0 && string(p.Meta.ProgressToken) != "null" {
		// A progress token is a string or an integer (ProgressToken in the
		// schema); anything else would be echoed back malformed.
		var str string
		var num json.Number
		if json.Unmarshal(p.Meta.ProgressToken, &str) != nil && (json.Unmarshal(p.Meta.ProgressToken, &num) != nil || strings.ContainsAny(num.String(), ".eE")) {
			return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "_meta.progressToken must be a string or an integer")
		}
		token = p.Meta.ProgressToken
	}
	return &schemas.ToolJob{EventID: ev.EventID, SessionID: ev.SessionID, Principal: ev.Principal, Tool: *p.Name,
		Arguments: nonNull(p.Arguments), ProgressToken: token, ReplyGateway: ev.ReplyGateway, ReplyToken: ev.ReplyToken,
		AcceptedAt: now}, nil
}

// MaxClientDescriptionBytes bounds clientInfo plus capabilities at
// initialize (and per request in 2026-07-28): they ride along in every tool
// job, and gateway.MaxEnvelopeBytes leaves room for them.
const MaxClientDescriptionBytes = 256 << 10

// capabilities are what the platform serves today. listChanged and
// resources.subscribe are advertised only when the deployment delivers those
// notifications (Env.Notifications): a client told to expect them would
// otherwise wait forever.
func capabilities(env Env) map[string]any {
	caps := map[string]any{"tools": map[string]any{}, "logging": map[string]any{}}
	// 2025-11-25 tasks: tools/call may be task-augmented, tasks cancelled.
	// tasks/list is not offered: tasks live by id across the toolcalls
	// partitions, and listing a session's would need an index per session.
	caps["tasks"] = map[string]any{"cancel": map[string]any{}, "requests": map[string]any{"tools": map[string]any{"call": map[string]any{}}}}
	if c := env.Catalog; c != nil {
		if c.ServesResources() {
			caps["resources"] = map[string]any{}
		}
		if c.ServesPrompts() {
			caps["prompts"] = map[string]any{}
		}
		if c.ServesCompletions() {
			caps["completions"] = map[string]any{}
		}
	}
	notificationCapabilities(env, caps)
	return caps
}

// statelessCapabilities adds what only 2026-07-28 clients get: the tasks
// extension (2025-11-25's experimental tasks are another protocol).
func statelessCapabilities(env Env) map[string]any {
	caps := capabilities(env)
	// The extension replaces the 2025-11-25 tasks capability.
	delete(caps, "tasks")
	caps["extensions"] = map[string]any{TasksExtension: map[string]any{}}
	return caps
}

func initializeResult(env Env, version string) map[string]any {
	r := map[string]any{
		"protocolVersion": version,
		"capabilities":    capabilities(env),
		"serverInfo":      env.Server,
	}
	if env.Server.Instructions != "" {
		r["instructions"] = env.Server.Instructions
	}
	return r
}

func discoverResult(env Env) map[string]any {
	r := map[string]any{
		"resultType":        "complete",
		"supportedVersions": append(append([]string{}, processors.StatelessVersions...), processors.StatefulVersions...),
		"capabilities":      statelessCapabilities(env),
		"_meta":             map[string]any{"io.modelcontextprotocol/serverInfo": env.Server},
		"ttlMs":             60000,
		"cacheScope":        "public",
	}
	if env.Server.Instructions != "" {
		r["instructions"] = env.Server.Instructions
	}
	return r
}

func orEmpty(b []byte) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

func nonNull(b json.RawMessage) []byte {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return b
}

// cancelControl turns notifications/cancelled into a cancellation of the
// call it names. The call's event id is derived the way the gateway derived
// it from the request (session + JSON-RPC id), so no lookup is needed; a
// request id that names no running tool call is ignored downstream.
func cancelControl(ev *schemas.RequestEvent, now time.Time) *schemas.ToolControl {
	var p struct {
		RequestID json.RawMessage `json:"requestId"`
		Reason    string          `json:"reason"`
	}
	if json.Unmarshal(orEmpty(ev.Params), &p) != nil || len(p.RequestID) == 0 {
		return nil
	}
	var id bytes.Buffer
	if json.Compact(&id, p.RequestID) != nil {
		return nil
	}
	return &schemas.ToolControl{EventID: streams.SessionEventID(ev.SessionID, id.Bytes()), Kind: schemas.ControlCancel,
		Reason: p.Reason, ProducedAt: now}
}

// sessionTask applies 2025-11-25 task augmentation: a tools/call with a
// "task" param runs as a task if the tool supports it; a tool that
// requires it refuses plain calls. Both refusals are -32601, as that
// revision asks.
func sessionTask(env Env, ev *schemas.RequestEvent, job *schemas.ToolJob) *jsonrpc.Error {
	var p struct {
		Task *struct {
			TTL *float64 `json:"ttl"`
		} `json:"task"`
	}
	_ = json.Unmarshal(orEmpty(ev.Params), &p)
	support := tools.TaskForbidden
	if env.TaskSupport != nil {
		support = env.TaskSupport(job.Tool)
	}
	switch {
	case p.Task == nil && support == tools.TaskRequired:
		return jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "tool %s must be called as a task (params.task)", job.Tool)
	case p.Task == nil:
		return nil
	case support == tools.TaskForbidden:
		return jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "tool %s does not support task-augmented calls", job.Tool)
	}
	job.Task = true
	job.TaskTTLMs = DefaultTaskTTLMs
	if p.Task.TTL != nil && *p.Task.TTL > 0 && *p.Task.TTL < float64(DefaultTaskTTLMs) {
		// A shorter lifetime than ours may be asked for; a longer one is
		// capped (the receiver may override ttl).
		job.TaskTTLMs = int64(*p.Task.TTL)
	}
	return nil
}

// TasksExtension is the tasks extension's identifier (SEP-2663).
const TasksExtension = tools.TasksExtension

// DefaultTaskTTLMs is the ttlMs announced for tasks: how long a finished
// task stays retrievable at least. Tasks live in the toolcalls table, which
// keeps them longer; the figure is the promise, not the limit.
const DefaultTaskTTLMs = 60 * 60 * 1000

func missingTasksExtension(what string) *jsonrpc.Error {
	return &jsonrpc.Error{Code: jsonrpc.CodeMissingClientCapability,
		Message: "Missing required client capability: " + what + " needs the " + TasksExtension + " extension",
		Data:    json.RawMessage(`{"requiredCapabilities":{"extensions":{"` + TasksExtension + `":{}}}}`)}
}

// tasksRequest sends tasks/get, tasks/update and tasks/cancel to the
// toolcalls group as a QUERY on the task's key: the task's state lives
// there, in the partition of its id, and any processor instance owning that
// partition answers, whichever gateway the poll came through.
func tasksRequest(ev *schemas.RequestEvent, now time.Time, reply func(int, []byte) Outcome) Outcome {
	var p struct {
		TaskID         *string         `json:"taskId"`
		InputResponses json.RawMessage `json:"inputResponses"`
		Meta           struct {
			Caps json.RawMessage `json:"io.modelcontextprotocol/clientCapabilities"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(orEmpty(ev.Params), &p); err != nil {
		return reply(200, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid %s params: %v", ev.Method, err)))
	}
	if !tools.DeclaresTasks(p.Meta.Caps) {
		return reply(200, jsonrpc.ErrorBody(missingTasksExtension(ev.Method)))
	}
	if p.TaskID == nil || *p.TaskID == "" {
		return reply(200, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s needs params.taskId", ev.Method)))
	}
	q := &schemas.ToolControl{EventID: *p.TaskID, Kind: schemas.ControlQuery, Method: ev.Method, Principal: ev.Principal,
		ReplyGateway: ev.ReplyGateway, ReplyToken: ev.ReplyToken, ProducedAt: now}
	if ev.Method == "tasks/update" {
		if len(p.InputResponses) == 0 || p.InputResponses[0] != '{' {
			return reply(200, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "tasks/update needs params.inputResponses, an object")))
		}
		q.Payload = p.InputResponses
	}
	return Outcome{Control: q}
}
