package sessions

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sort"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/tools"
)

// This file answers the catalog methods (resources/*, prompts/*,
// completion/complete) and paginates every list, tools/list included.
//
// The sessions processor answers them itself, inside its partition loop,
// because the catalog providers registered today are built-ins that answer
// from memory: they never block a partition. Resources and prompts backed by
// upstream servers will be forwarded to executors, like tools/call, instead
// of being read here.

// Catalog is what Handle needs of the resource and prompt catalog;
// *tools.CatalogRegistry implements it (and its methods accept a nil
// receiver, which serves nothing).
type Catalog interface {
	ServesResources() bool
	ServesPrompts() bool
	ServesCompletions() bool
	ListResources(ctx context.Context) ([]tools.Resource, error)
	ListResourceTemplates(ctx context.Context) ([]tools.ResourceTemplate, error)
	ReadResource(ctx context.Context, uri string) (*tools.ReadResourceResult, error)
	ListPrompts(ctx context.Context) ([]tools.Prompt, error)
	GetPrompt(ctx context.Context, name string, args map[string]string) (*tools.GetPromptResult, error)
	Complete(ctx context.Context, ref tools.CompletionRef, arg tools.CompletionArgument, cc tools.CompletionContext) (*tools.Completion, error)
}

var _ Catalog = (*tools.CatalogRegistry)(nil)

// DefaultPageSize is the page size of every list when Env.PageSize (and
// Config.PageSize) is zero.
const DefaultPageSize = 50

// listTTLMs is the 2026-07-28 caching hint of list results: lists are the
// same for every caller and change only with the configuration.
const listTTLMs = 60000

// codeResourceNotFound is 2025-11-25's resource-not-found code; 2026-07-28
// (SEP-2164) answers -32602 instead.
const codeResourceNotFound = -32002

// List names, bound into each cursor's signature so a cursor of one list
// cannot be replayed against another.
const (
	listTools     = "tools"
	listResources = "resources"
	listTemplates = "resourceTemplates"
	listPrompts   = "prompts"
)

// defaultCursorKey signs cursors when no key is configured. It is in the
// source, so such cursors are tamper-evident (a mangled or made-up cursor
// is rejected) but not unforgeable; configure Config.CursorKey for that.
var defaultCursorKey = []byte("mcpstream list cursor key v1")

const (
	cursorVersion = 1
	cursorMACSize = 16
)

// Cursors signs and checks the opaque pagination cursors. A cursor names the
// last entry of the page it follows (not an offset), so a page boundary
// stays correct when entries are added or removed between requests, and
// every processor instance holding the same key accepts it.
type Cursors struct{ key []byte }

// NewCursors returns cursors signed with key; an empty key means the
// built-in default key.
func NewCursors(key []byte) *Cursors {
	if len(key) == 0 {
		key = defaultCursorKey
	}
	return &Cursors{key: append([]byte(nil), key...)}
}

func (c *Cursors) mac(list string, payload []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(list))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)[:cursorMACSize]
}

// encode returns the cursor of the page following the entry after.
func (c *Cursors) encode(list, after string) string {
	payload := append([]byte{cursorVersion}, after...)
	return base64.RawURLEncoding.EncodeToString(append(payload, c.mac(list, payload)...))
}

var errBadCursor = errors.New("invalid cursor")

// decode checks a cursor of list and returns the key it continues after.
func (c *Cursors) decode(list, cursor string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) < 1+cursorMACSize || raw[0] != cursorVersion {
		return "", errBadCursor
	}
	payload, sum := raw[:len(raw)-cursorMACSize], raw[len(raw)-cursorMACSize:]
	if !hmac.Equal(sum, c.mac(list, payload)) {
		return "", errBadCursor
	}
	return string(payload[1:]), nil
}

func (env Env) ctx() context.Context {
	if env.Ctx != nil {
		return env.Ctx
	}
	return context.Background()
}

func (env Env) cursors() *Cursors {
	if env.Cursors != nil {
		return env.Cursors
	}
	return NewCursors(nil)
}

func (env Env) pageSize() int {
	if env.PageSize > 0 {
		return env.PageSize
	}
	return DefaultPageSize
}

// paginate returns the page of items (sorted by key, byte order) that
// params' cursor asks for, and the cursor of the next page ("" on the last
// one). An empty cursor string is treated as no cursor: we never issue one,
// and a client that sends it means the first page.
func paginate[T any](env Env, list string, items []T, key func(T) string, params []byte) ([]T, string, *jsonrpc.Error) {
	var p struct {
		Cursor *string `json:"cursor"`
	}
	if err := json.Unmarshal(orEmpty(params), &p); err != nil {
		return nil, "", jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid params: %v", err)
	}
	start := 0
	if p.Cursor != nil && *p.Cursor != "" {
		after, err := env.cursors().decode(list, *p.Cursor)
		if err != nil {
			return nil, "", jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid cursor")
		}
		start = sort.Search(len(items), func(i int) bool { return key(items[i]) > after })
	}
	end := min(start+env.pageSize(), len(items))
	page := make([]T, 0, end-start)
	page = append(page, items[start:end]...)
	next := ""
	if end < len(items) {
		next = env.cursors().encode(list, key(items[end-1]))
	}
	return page, next, nil
}

// cache is a 2026-07-28 caching hint.
type cache struct {
	ttlMs  int64
	public bool
}

// finish adds what every 2026-07-28 result carries (resultType, the server
// in _meta, merged into a provider's _meta) and, for cacheable results,
// ttlMs and cacheScope. 2025-11-25 results are left as they are.
func finish(env Env, stateless bool, r map[string]any, meta json.RawMessage, hint *cache) map[string]any {
	if len(meta) > 0 && !bytes.Equal(bytes.TrimSpace(meta), []byte("null")) {
		r["_meta"] = meta
	}
	if !stateless {
		return r
	}
	r["resultType"] = "complete"
	m := map[string]any{}
	if raw, ok := r["_meta"].(json.RawMessage); ok {
		// A provider _meta that is not an object cannot be merged; the
		// server identity is only a SHOULD, the provider's data wins.
		if json.Unmarshal(raw, &m) != nil {
			m = nil
		}
	}
	if m != nil {
		m["io.modelcontextprotocol/serverInfo"] = env.Server
		r["_meta"] = m
	}
	if hint != nil {
		scope := "private"
		if hint.public {
			scope = "public"
		}
		r["ttlMs"], r["cacheScope"] = hint.ttlMs, scope
	}
	return r
}

func listResult[T any](env Env, stateless bool, field, list string, items []T, key func(T) string, params []byte) (map[string]any, *jsonrpc.Error) {
	page, next, e := paginate(env, list, items, key, params)
	if e != nil {
		return nil, e
	}
	r := map[string]any{field: page}
	if next != "" {
		r["nextCursor"] = next
	}
	return finish(env, stateless, r, nil, &cache{ttlMs: listTTLMs, public: true}), nil
}

// answer turns a result or an error into a reply status and body.
func answer(result map[string]any, e *jsonrpc.Error) (int, []byte) {
	if e != nil {
		return 200, jsonrpc.ErrorBody(e)
	}
	body, err := jsonrpc.ResultBody(result)
	if err != nil {
		return 500, jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInternalError, "%v", err))
	}
	return 200, body
}

// toolsList answers tools/list, one page at a time.
func toolsList(env Env, ev *schemas.RequestEvent, stateless bool) (int, []byte) {
	return answer(listResult(env, stateless, "tools", listTools, env.Tools, func(t tools.Tool) string { return t.Name }, ev.Params))
}

// serveCatalog answers the catalog methods. ok is false for a method the
// catalog does not serve (unknown, or a capability not configured): the
// caller answers method-not-found. resources/subscribe and unsubscribe are
// session state (subscriptions.go); 2026-07-28 removed them.
func serveCatalog(env Env, ev *schemas.RequestEvent, stateless bool) (status int, body []byte, ok bool) {
	c := env.Catalog
	if c == nil {
		return 0, nil, false
	}
	ctx := env.ctx()
	var (
		r map[string]any
		e *jsonrpc.Error
	)
	switch ev.Method {
	case "resources/list":
		if !c.ServesResources() {
			return 0, nil, false
		}
		list, err := c.ListResources(ctx)
		if err != nil {
			e = internal("list resources", err)
			break
		}
		r, e = listResult(env, stateless, "resources", listResources, list, func(x tools.Resource) string { return x.URI }, ev.Params)
	case "resources/templates/list":
		if !c.ServesResources() {
			return 0, nil, false
		}
		list, err := c.ListResourceTemplates(ctx)
		if err != nil {
			e = internal("list resource templates", err)
			break
		}
		r, e = listResult(env, stateless, "resourceTemplates", listTemplates, list, func(x tools.ResourceTemplate) string { return x.URITemplate }, ev.Params)
	case "resources/read":
		if !c.ServesResources() {
			return 0, nil, false
		}
		r, e = readResource(env, c, ev.Params, stateless)
	case "prompts/list":
		if !c.ServesPrompts() {
			return 0, nil, false
		}
		list, err := c.ListPrompts(ctx)
		if err != nil {
			e = internal("list prompts", err)
			break
		}
		r, e = listResult(env, stateless, "prompts", listPrompts, list, func(x tools.Prompt) string { return x.Name }, ev.Params)
	case "prompts/get":
		if !c.ServesPrompts() {
			return 0, nil, false
		}
		r, e = getPrompt(env, c, ev, stateless)
	case "completion/complete":
		if !c.ServesCompletions() {
			return 0, nil, false
		}
		r, e = complete(env, c, ev.Params, stateless)
	default:
		return 0, nil, false
	}
	status, body = answer(r, e)
	return status, body, true
}

func uriParam(params []byte) (string, *jsonrpc.Error) {
	var p struct {
		URI *string `json:"uri"`
	}
	if err := json.Unmarshal(orEmpty(params), &p); err != nil {
		return "", jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid params: %v", err)
	}
	if p.URI == nil || *p.URI == "" {
		return "", jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "params.uri is required")
	}
	return *p.URI, nil
}

func readResource(env Env, c Catalog, params []byte, stateless bool) (map[string]any, *jsonrpc.Error) {
	uri, e := uriParam(params)
	if e != nil {
		return nil, e
	}
	res, err := c.ReadResource(env.ctx(), uri)
	if err != nil {
		return nil, catalogError(err, stateless, uri, "")
	}
	return finish(env, stateless, map[string]any{"contents": res.Contents}, res.Meta,
		&cache{ttlMs: max(res.TTL.Milliseconds(), 0), public: res.Public}), nil
}

func getPrompt(env Env, c Catalog, ev *schemas.RequestEvent, stateless bool) (map[string]any, *jsonrpc.Error) {
	var p struct {
		Name      *string           `json:"name"`
		Arguments map[string]string `json:"arguments"`
	}
	if err := json.Unmarshal(orEmpty(ev.Params), &p); err != nil {
		// Also what a non-string argument value gives: prompt arguments
		// are strings on the wire.
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid prompts/get params: %v", err)
	}
	if p.Name == nil || *p.Name == "" {
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "params.name is required")
	}
	ctx := env.ctx()
	var round *promptRound
	if stateless {
		// The prompt may ask the client for input (multi round-trip
		// requests, mrtr.go).
		var raw struct {
			Arguments json.RawMessage `json:"arguments"`
		}
		_ = json.Unmarshal(orEmpty(ev.Params), &raw)
		var e *jsonrpc.Error
		if ctx, round, e = startPromptRound(ctx, env, ev, *p.Name, raw.Arguments); e != nil {
			return nil, e
		}
	}
	res, err := c.GetPrompt(ctx, *p.Name, p.Arguments)
	if r, e, ok := round.inputRequired(env, err); ok {
		return r, e
	}
	if err != nil {
		return nil, catalogError(err, stateless, "", *p.Name)
	}
	msgs := res.Messages
	if msgs == nil {
		msgs = []tools.PromptMessage{}
	}
	r := map[string]any{"messages": msgs}
	if res.Description != "" {
		r["description"] = res.Description
	}
	return finish(env, stateless, r, res.Meta, nil), nil
}

func complete(env Env, c Catalog, params []byte, stateless bool) (map[string]any, *jsonrpc.Error) {
	var p struct {
		Ref      *tools.CompletionRef `json:"ref"`
		Argument *struct {
			Name  *string `json:"name"`
			Value *string `json:"value"`
		} `json:"argument"`
		Context tools.CompletionContext `json:"context"`
	}
	if err := json.Unmarshal(orEmpty(params), &p); err != nil {
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid completion/complete params: %v", err)
	}
	switch {
	case p.Ref == nil:
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "params.ref is required")
	case p.Ref.Type == tools.RefPrompt && p.Ref.Name == "":
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "params.ref.name is required for %s", tools.RefPrompt)
	case p.Ref.Type == tools.RefResource && p.Ref.URI == "":
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "params.ref.uri is required for %s", tools.RefResource)
	case p.Argument == nil || p.Argument.Name == nil || *p.Argument.Name == "" || p.Argument.Value == nil:
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "params.argument needs name and value")
	}
	res, err := c.Complete(env.ctx(), *p.Ref, tools.CompletionArgument{Name: *p.Argument.Name, Value: *p.Argument.Value}, p.Context)
	if errors.Is(err, tools.ErrResourceNotFound) {
		// A reference to no template is a bad parameter of this request,
		// not a failed read.
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "Unknown resource reference: %s", p.Ref.URI)
	}
	if err != nil {
		return nil, catalogError(err, stateless, p.Ref.URI, p.Ref.Name)
	}
	return finish(env, stateless, map[string]any{"completion": res}, nil, nil), nil
}

// catalogError maps a catalog error to the JSON-RPC error the revision
// asks for: the one place where provider errors become codes.
// uri and prompt name what was asked for, for the error's message and data.
func catalogError(err error, stateless bool, uri, prompt string) *jsonrpc.Error {
	var (
		rpc *tools.RPCError
		arg *tools.ArgumentError
	)
	switch {
	case errors.As(err, &rpc):
		return &jsonrpc.Error{Code: rpc.Code, Message: rpc.Message, Data: rpc.Data}
	case errors.Is(err, tools.ErrResourceNotFound):
		code := codeResourceNotFound
		if stateless {
			code = jsonrpc.CodeInvalidParams
		}
		return jsonrpc.Errorf(code, "Resource not found").WithData(map[string]string{"uri": uri})
	case errors.Is(err, tools.ErrUnknownPrompt):
		return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "Unknown prompt: %s", prompt)
	case errors.As(err, &arg):
		return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s", arg.Error())
	}
	return internal("catalog", err)
}

func internal(what string, err error) *jsonrpc.Error {
	return jsonrpc.Errorf(jsonrpc.CodeInternalError, "internal error: %s: %v", what, err)
}
