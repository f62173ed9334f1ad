package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors"
	"github.com/mcpstream/mcpstream/processors/notify"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

// Header names.
const (
	hSessionID       = "Mcp-Session-Id"
	hProtocolVersion = "Mcp-Protocol-Version"
	hMethod          = "Mcp-Method"
	hName            = "Mcp-Name"
)

// IdempotencyKeyMeta is the _meta field a client sets to make a stateless
// request retry-safe: the same key (for the same principal) names the same
// request, and its tool runs once.
const IdempotencyKeyMeta = "io.mcpstream/idempotencyKey"

// Handler returns the MCP endpoint handler.
func (g *Gateway) Handler() http.Handler { return http.HandlerFunc(g.serveHTTP) }

// message is the part of a JSON-RPC message the gateway looks at.
type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  *string         `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

type reqMeta struct {
	present            bool
	ProtocolVersion    string          `json:"io.modelcontextprotocol/protocolVersion"`
	ClientCapabilities json.RawMessage `json:"io.modelcontextprotocol/clientCapabilities"`
	IdempotencyKey     json.RawMessage `json:"io.mcpstream/idempotencyKey"`
}

func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	method, outcome := "invalid", "rejected"
	defer func() {
		d := time.Since(start)
		g.cfg.Metrics.Request(method, outcome, d)
		g.log.Debug("request", "http_method", r.Method, "method", method, "outcome", outcome, "duration", d)
	}()

	if err := g.checkOrigin(r); err != nil {
		writeError(w, http.StatusForbidden, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "%v", err))
		return
	}
	switch r.Method {
	case http.MethodPost:
		method, outcome = g.servePost(w, r)
	case http.MethodDelete:
		method = "DELETE"
		outcome = g.serveDelete(w, r)
	case http.MethodGet:
		if last := r.Header.Get("Last-Event-ID"); last != "" && !strings.HasPrefix(last, standaloneIDPrefix) && r.Header.Get(hProtocolVersion) != processors.Version20260728 {
			method = "resume"
			outcome = g.serveResume(w, r, last)
			return
		}
		if r.Header.Get(hProtocolVersion) != processors.Version20260728 && r.Header.Get(hSessionID) != "" {
			// The session's standalone stream (listen.go).
			method = "GET"
			outcome = g.serveStream(w, r)
			return
		}
		// 2026-07-28 removed the standalone stream (subscriptions/listen
		// replaces it); without a session there is nothing to stream.
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "no standalone SSE stream; GET only resumes a stream (Last-Event-ID)"))
	default:
		// 2025-11-25 allows 405 for the optional GET stream; 2026-07-28
		// removed it.
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "method %s not allowed on the MCP endpoint", r.Method))
	}
}

// checkOrigin implements DNS-rebinding protection: a browser page on
// another origin must not reach a local server, and a rebound DNS name
// shows up as a foreign Host.
func (g *Gateway) checkOrigin(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" && !slices.Contains(g.cfg.AllowedOrigins, "*") && !slices.Contains(g.cfg.AllowedOrigins, o) {
		u, err := url.Parse(o)
		if err != nil || !isLoopback(strings.ToLower(u.Hostname())) {
			return fmt.Errorf("origin %q is not allowed", o)
		}
	}
	if g.cfg.PublicHost {
		return nil
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if host != "" && !isLoopback(host) && !slices.Contains(g.cfg.AllowedHosts, host) {
		return fmt.Errorf("host %q is not allowed", r.Host)
	}
	return nil
}

func (g *Gateway) servePost(w http.ResponseWriter, r *http.Request) (method, outcome string) {
	method, outcome = "invalid", "rejected"
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "Content-Type must be application/json"))
			return
		}
	}
	acceptsSSE, acceptsJSON := accepts(r.Header.Get("Accept"))
	if !acceptsJSON && !acceptsSSE {
		writeError(w, http.StatusNotAcceptable, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "Accept must include application/json and text/event-stream"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "request body exceeds %d bytes", g.cfg.MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, nil, jsonrpc.Errorf(jsonrpc.CodeParseError, "reading body: %v", err))
		return
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if !json.Valid(trimmed) {
			writeError(w, http.StatusBadRequest, nil, jsonrpc.Errorf(jsonrpc.CodeParseError, "parse error: invalid JSON"))
			return
		}
		writeError(w, http.StatusBadRequest, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "JSON-RPC batches are not supported"))
		return
	}
	var msg message
	if err := json.Unmarshal(trimmed, &msg); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || !json.Valid(trimmed) {
			writeError(w, http.StatusBadRequest, nil, jsonrpc.Errorf(jsonrpc.CodeParseError, "parse error: %v", err))
		} else {
			writeError(w, http.StatusBadRequest, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "invalid request: %v", err))
		}
		return
	}
	id := msg.ID
	if err := validateMessage(&msg); err != nil {
		writeError(w, http.StatusBadRequest, validID(id), err)
		return
	}

	if len(r.Header.Values(hSessionID)) > 1 {
		writeError(w, http.StatusBadRequest, validID(id), jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "more than one Mcp-Session-Id header"))
		return
	}
	ev := &schemas.RequestEvent{Principal: principal(r), ReceivedAt: time.Now(), ReplyGateway: g.cfg.ID, ReplyToken: streams.NewID(),
		SessionID: r.Header.Get(hSessionID), ProtocolVersion: r.Header.Get(hProtocolVersion)}
	switch {
	case msg.Method == nil:
		ev.Kind = schemas.KindResponse
		method = "response"
	case len(id) == 0:
		ev.Kind = schemas.KindNotification
		method = *msg.Method
	default:
		ev.Kind = schemas.KindRequest
		method = *msg.Method
	}
	if msg.Method != nil {
		ev.Method = *msg.Method
	}
	if ev.Kind == schemas.KindNotification && notify.Internal(ev.Method) {
		// The gateways' own notifications to the sessions processor
		// (listen.go) never come from clients; unknown notifications are
		// accepted and ignored, as MCP asks.
		w.WriteHeader(http.StatusAccepted)
		return method, "ok"
	}
	ev.Params = msg.Params
	if ev.Kind == schemas.KindRequest && ev.Method == "tools/call" {
		params, herr := withParamHeaders(msg.Params, r.Header)
		if herr != nil {
			writeError(w, http.StatusBadRequest, id, herr)
			return
		}
		ev.Params = params
	}
	if ev.Kind == schemas.KindRequest {
		ev.RPCID = id
	}
	if cid, ok := clientRequestID(id); ok && ev.Kind == schemas.KindResponse {
		// Answers a request a tool sent: it goes to the executor that
		// waits for it, not to the session (clientresp.go).
		return method, g.serveClientResponse(w, r, ev, cid, trimmed)
	}

	var meta reqMeta
	if len(msg.Params) > 0 && msg.Params[0] == '{' {
		var p struct {
			Meta json.RawMessage `json:"_meta"`
		}
		if json.Unmarshal(msg.Params, &p) == nil && len(p.Meta) > 0 && p.Meta[0] == '{' {
			_ = json.Unmarshal(p.Meta, &meta)
			meta.present = true
		}
	}

	key := ev.SessionID
	hv := ev.ProtocolVersion
	switch {
	case hv != "" && !slices.Contains(processors.StatefulVersions, hv) ||
		hv == "" && ev.SessionID == "" && ev.Method != "initialize" && meta.present:
		// The 2026 header decides, even on a request that also carries a
		// (then ignored) session id.
		if herr := checkStatelessHeaders(r, &msg, meta); herr != nil {
			writeError(w, http.StatusBadRequest, id, herr)
			return
		}
		ev.SessionID = ""
		ev.ProtocolVersion = meta.ProtocolVersion
		if len(meta.IdempotencyKey) > 0 {
			var key string
			if json.Unmarshal(meta.IdempotencyKey, &key) != nil || key == "" || len(key) > 256 {
				writeError(w, http.StatusBadRequest, id, jsonrpc.Errorf(jsonrpc.CodeInvalidParams,
					"_meta[%q] must be a non-empty string of at most 256 bytes", IdempotencyKeyMeta))
				return
			}
			ev.EventID = keyedEventID(ev.Principal, key, msg.Params)
		} else {
			ev.EventID = streams.RandomEventID()
		}
		key = ev.EventID
	case ev.SessionID != "":
		if ev.Method == "initialize" {
			writeError(w, http.StatusBadRequest, id, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "initialize must not carry Mcp-Session-Id"))
			return
		}
		if !validSessionID(ev.SessionID) {
			writeError(w, http.StatusBadRequest, id, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "malformed Mcp-Session-Id"))
			return
		}
		switch ev.Kind {
		case schemas.KindRequest:
			ev.EventID = streams.SessionEventID(ev.SessionID, id)
		case schemas.KindNotification:
			ev.EventID = streams.NotificationEventID(ev.SessionID, ev.Method, msg.Params)
		default:
			ev.EventID = streams.RandomEventID()
		}
	case ev.Method == "initialize" && ev.Kind == schemas.KindRequest:
		ev.SessionID = streams.NewID()
		ev.ProtocolVersion = ""
		ev.EventID = streams.SessionEventID(ev.SessionID, id)
		key = ev.SessionID
	default:
		writeError(w, http.StatusBadRequest, id, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "missing Mcp-Session-Id: initialize a session first, or send a 2026-07-28 request with _meta"))
		return
	}

	if ev.SessionID == "" && ev.Kind == schemas.KindRequest && ev.Method == "subscriptions/listen" {
		// A stream of this gateway fed by broadcasts from the log; nothing
		// to ask the processors.
		return method, g.serveListen(w, r, id, msg.Params)
	}
	useCache := g.cfg.Results != nil && ev.SessionID == "" && ev.Kind == schemas.KindRequest && cacheable[ev.Method]
	if useCache {
		if body, ok := g.cfg.Results.Lookup(r.Context(), ev.ProtocolVersion, ev.Method, ev.Params, ev.Principal); ok {
			w.Header().Set("Content-Type", "application/json")
			w.Write(jsonrpc.Compose(id, body))
			return method, "ok_cached"
		}
	}
	if !g.Ready() {
		writeNotReady(w, ev.RPCID)
		return method, "unavailable"
	}
	wt := g.register(ev.ReplyToken)
	defer g.unregister(ev.ReplyToken)
	base := g.consumed.Load()
	if err := g.produce(r.Context(), ev, key); err != nil {
		g.log.Error("request not accepted", "event", ev.EventID, "err", err)
		writeError(w, http.StatusServiceUnavailable, id, jsonrpc.Errorf(jsonrpc.CodeInternalError, "request not confirmed by the log in time (it may or may not have been accepted); retry with the same id or idempotency key, which is safe either way"))
		return method, "unavailable"
	}
	useSSE := acceptsSSE && ev.Kind == schemas.KindRequest && ev.Method == "tools/call"
	// A call that asked for progress is expected to run a while: open its
	// stream at once so it can be resumed from the first moment.
	prime := useSSE && (hasProgressToken(msg.Params) || g.cfg.SSEPollAfter > 0)
	return method, g.await(w, r, ev, id, wt, useSSE, prime, base)
}

// await writes the replies for one request until its final one. With
// useSSE, notifications stream before the response; with resumable (a
// 2025-11-25 session), every event carries an id naming its log position,
// and primeSSE opens the stream at once with a priming event so even a
// client cut off before the first notification can resume.
func (g *Gateway) await(w http.ResponseWriter, r *http.Request, ev *schemas.RequestEvent, id json.RawMessage, wt *waiter, useSSE, primeSSE bool, base int64) string {
	timer := time.NewTimer(g.cfg.RequestTimeout)
	defer timer.Stop()
	resumable := ev.SessionID != "" && ev.ProtocolVersion != processors.Version20260728
	pos := func(offset int64) string {
		if !resumable {
			return ""
		}
		return streamPos{Gateway: g.cfg.ID, Token: ev.ReplyToken, Offset: offset, RPCID: id}.eventID()
	}
	var sse *sseWriter
	var poll <-chan time.Time
	if primeSSE && resumable {
		sse = g.startSSE(w, ev.SessionID)
		sse.prime(pos(base), g.cfg.SSEPollAfter)
		if g.cfg.SSEPollAfter > 0 {
			t := time.NewTimer(g.cfg.SSEPollAfter)
			defer t.Stop()
			poll = t.C
		}
	}
	for {
		select {
		case <-r.Context().Done():
			return "client_gone"
		case <-poll:
			// Still running: let the connection go. Everything from here on
			// is in the reply log, and GET with the last event id replays it.
			return "polling"
		case <-timer.C:
			e := jsonrpc.Errorf(jsonrpc.CodeTimeout, "no reply within %s; retry with the same id to get the result", g.cfg.RequestTimeout)
			if sse != nil {
				sse.send("", jsonrpc.Compose(id, jsonrpc.ErrorBody(e)))
				return "timeout"
			}
			writeError(w, http.StatusGatewayTimeout, id, e)
			return "timeout"
		case d := <-wt.ch:
			rep := d.rep
			switch rep.Kind {
			case schemas.ReplyNotification:
				if !useSSE {
					// A JSON response has nowhere to put it; a request from
					// the tool is refused for the client (clientresp.go).
					g.refuseClientRequest(r.Context(), ev, rep.Message)
					continue
				}
				if sse == nil {
					sse = g.startSSE(w, rep.SessionID)
				}
				sse.send(pos(d.offset), rep.Message)
				continue
			case schemas.ReplyAccepted:
				if ev.Method == "initialize" || rep.SessionID != "" && ev.SessionID != "" {
					w.Header().Set(hSessionID, ev.SessionID)
				}
				status := rep.HTTPStatus
				if status == 404 {
					writeError(w, status, nil, jsonrpc.Errorf(jsonrpc.CodeSessionNotFound, "session not found"))
					return "not_found"
				}
				w.WriteHeader(status)
				return outcomeOf(status)
			}
			msg := jsonrpc.Compose(id, rep.Message)
			status := rep.HTTPStatus
			if ev.SessionID == "" && status == 200 {
				// 2026-07-28 wants its protocol errors as HTTP 400, whichever
				// component raised them (a tool may raise -32021).
				if code, ok := jsonrpc.IsError(rep.Message); ok && code <= jsonrpc.CodeHeaderMismatch && code >= jsonrpc.CodeUnsupportedProtocolVersion {
					status = http.StatusBadRequest
				}
			}
			if sse != nil {
				sse.send(pos(d.offset), msg)
				return outcomeOfBody(rep.Message)
			}
			if ev.Method == "initialize" && rep.HTTPStatus == 200 {
				w.Header().Set(hSessionID, ev.SessionID)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			w.Write(msg)
			if status != 200 {
				return outcomeOf(status)
			}
			if g.cfg.Results != nil && ev.SessionID == "" && cacheable[ev.Method] {
				go g.cfg.Results.Offer(context.WithoutCancel(r.Context()), ev.ProtocolVersion, ev.Method, ev.Params, ev.Principal, rep.Message)
			}
			return outcomeOfBody(rep.Message)
		}
	}
}

func (g *Gateway) serveDelete(w http.ResponseWriter, r *http.Request) string {
	sid := r.Header.Get(hSessionID)
	if sid == "" || !validSessionID(sid) {
		writeError(w, http.StatusBadRequest, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "DELETE needs a valid Mcp-Session-Id"))
		return "rejected"
	}
	ev := &schemas.RequestEvent{EventID: streams.NotificationEventID(sid, "DELETE", nil), Kind: schemas.KindSessionDelete,
		SessionID: sid, Principal: principal(r), ReplyGateway: g.cfg.ID, ReplyToken: streams.NewID(), ReceivedAt: time.Now()}
	if !g.Ready() {
		writeNotReady(w, nil)
		return "unavailable"
	}
	wt := g.register(ev.ReplyToken)
	defer g.unregister(ev.ReplyToken)
	if err := g.produce(r.Context(), ev, sid); err != nil {
		writeError(w, http.StatusServiceUnavailable, nil, jsonrpc.Errorf(jsonrpc.CodeInternalError, "could not end session: %v", err))
		return "unavailable"
	}
	return g.await(w, r, ev, nil, wt, false, false, 0)
}

func outcomeOf(status int) string {
	switch {
	case status < 300:
		return "ok"
	case status == 404:
		return "not_found"
	default:
		return "error"
	}
}

func outcomeOfBody(body []byte) string {
	if _, ok := jsonrpc.IsError(body); ok {
		return "error"
	}
	return "ok"
}

func validateMessage(m *message) *jsonrpc.Error {
	if m.JSONRPC != "2.0" {
		return jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`)
	}
	if len(m.ID) > 0 {
		switch m.ID[0] {
		case '"':
		case 'n':
			return jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "invalid request: id must not be null")
		default:
			var n json.Number
			if json.Unmarshal(m.ID, &n) != nil {
				return jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "invalid request: id must be a string or a number")
			}
		}
	}
	if m.Method == nil {
		if len(m.Result) == 0 && len(m.Error) == 0 {
			return jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "invalid request: no method")
		}
		if len(m.ID) == 0 {
			return jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "invalid response: no id")
		}
		return nil
	}
	if *m.Method == "" {
		return jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "invalid request: empty method")
	}
	if len(m.Params) > 0 && m.Params[0] != '{' && string(m.Params) != "null" {
		return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid params: params must be an object")
	}
	return nil
}

// validID returns id only if it is a valid JSON-RPC id, so an error about a
// malformed request never echoes a malformed id.
func validID(id json.RawMessage) json.RawMessage {
	if len(id) == 0 {
		return nil
	}
	if id[0] == '"' {
		return id
	}
	var n json.Number
	if json.Unmarshal(id, &n) == nil {
		return id
	}
	return nil
}

func validSessionID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e { // visible ASCII, as the spec requires
			return false
		}
	}
	return true
}

// checkStatelessHeaders applies 2026-07-28's header rules: the mirrored
// headers must be present and agree with the body.
func checkStatelessHeaders(r *http.Request, m *message, meta reqMeta) *jsonrpc.Error {
	hv := r.Header.Get(hProtocolVersion)
	if hv == "" {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: MCP-Protocol-Version header is required")
	}
	if meta.ProtocolVersion == "" {
		return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "params._meta[\"io.modelcontextprotocol/protocolVersion\"] is required")
	}
	if len(meta.ClientCapabilities) == 0 || meta.ClientCapabilities[0] != '{' {
		return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "params._meta[\"io.modelcontextprotocol/clientCapabilities\"] is required (an object)")
	}
	if hv != meta.ProtocolVersion {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: MCP-Protocol-Version header %q does not match body %q", hv, meta.ProtocolVersion)
	}
	if !slices.Contains(processors.StatelessVersions, meta.ProtocolVersion) {
		return jsonrpc.Errorf(jsonrpc.CodeUnsupportedProtocolVersion, "unsupported protocol version %q", meta.ProtocolVersion).
			WithData(map[string]any{"requested": meta.ProtocolVersion, "supported": processors.StatelessVersions})
	}
	if m.Method == nil {
		return nil
	}
	mh := r.Header.Get(hMethod)
	if mh == "" {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Method header is required")
	}
	if mh != *m.Method {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Method header %q does not match body %q", mh, *m.Method)
	}
	var field string
	switch *m.Method {
	case "tools/call", "prompts/get":
		field = "name"
	case "resources/read":
		field = "uri"
	case "tasks/get", "tasks/update", "tasks/cancel":
		// Tasks extension: lets intermediaries route polls by task id.
		field = "taskId"
	default:
		return nil
	}
	var p map[string]json.RawMessage
	_ = json.Unmarshal(m.Params, &p)
	var want string
	_ = json.Unmarshal(p[field], &want)
	nh, present := r.Header[http.CanonicalHeaderKey(hName)]
	if !present || len(nh) == 0 {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Name header is required for %s", *m.Method)
	}
	got, ok := decodeHeaderValue(nh[0])
	if !ok {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Name header is malformed")
	}
	if got != want {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Name header value %q does not match body value %q", got, want)
	}
	return nil
}

// decodeHeaderValue undoes the =?base64?...?= sentinel encoding.
func decodeHeaderValue(v string) (string, bool) {
	if strings.HasPrefix(v, "=?base64?") && strings.HasSuffix(v, "?=") && len(v) >= len("=?base64??=") {
		b, err := base64.StdEncoding.DecodeString(v[len("=?base64?") : len(v)-2])
		if err != nil {
			return "", false
		}
		return string(b), true
	}
	for _, c := range v {
		if (c < 0x20 || c > 0x7e) && c != '\t' {
			return "", false
		}
	}
	return v, true
}

func accepts(h string) (sse, js bool) {
	if h == "" {
		return true, true // no Accept means anything
	}
	for _, part := range strings.Split(h, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "text/event-stream":
			sse = true
		case "application/json":
			js = true
		case "*/*", "application/*":
			js = true
		}
	}
	return sse, js
}

// principal is who is calling. Without an authorization layer the bearer
// token itself is the identity: hashed, so it never reaches the log.
func principal(r *http.Request) string {
	a := r.Header.Get("Authorization")
	if a == "" {
		return "anonymous"
	}
	sum := sha256.Sum256([]byte(a))
	return "bearer:" + hex.EncodeToString(sum[:8])
}

func writeError(w http.ResponseWriter, status int, id json.RawMessage, e *jsonrpc.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(jsonrpc.Compose(id, jsonrpc.ErrorBody(e)))
}

// writeNotReady answers before the reply consumer is positioned: a request
// produced now could have its reply missed.
func writeNotReady(w http.ResponseWriter, id json.RawMessage) {
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, id, jsonrpc.Errorf(jsonrpc.CodeInternalError, "gateway is starting; retry"))
}

func hasProgressToken(params json.RawMessage) bool {
	var p struct {
		Meta struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	}
	return json.Unmarshal(params, &p) == nil && len(p.Meta.ProgressToken) > 0 && string(p.Meta.ProgressToken) != "null"
}
