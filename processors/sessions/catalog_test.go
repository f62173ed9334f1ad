package sessions_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors/processortest"
	"github.com/mcpstream/mcpstream/processors/sessions"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools"
	"github.com/mcpstream/mcpstream/tools/conformance"
)

// conformanceCatalog is the catalog the platform builds from the built-in
// conformance provider: 3 resources, 1 template, 4 prompts, completions.
func conformanceCatalog(t *testing.T) *tools.CatalogRegistry {
	t.Helper()
	c, err := tools.NewCatalogRegistry(context.Background(), conformance.New())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func catalogEnv(t *testing.T) sessions.Env {
	env := testEnv()
	env.Catalog = conformanceCatalog(t)
	return env
}

// revision is one of the two wires a catalog case runs on.
type revision struct {
	name      string
	stateless bool
}

var revisions = []revision{{"2025-11-25", false}, {"2026-07-28", true}}

// on builds the event of a request on rev: on the fixture session for
// 2025-11-25, stateless for 2026-07-28.
func (rev revision) on(method, params string) *schemas.RequestEvent {
	if rev.stateless {
		return req(method, params, stateless)
	}
	return req(method, params)
}

// decorations checks what distinguishes the revisions on every result:
// 2026-07-28 adds resultType and the server in _meta, and ttlMs/cacheScope
// on cacheable results; 2025-11-25 adds none of it.
func decorations(rev revision, ttlMs float64, scope string) func(*testing.T, map[string]any) {
	return func(t *testing.T, r map[string]any) {
		t.Helper()
		if !rev.stateless {
			for _, k := range []string{"resultType", "ttlMs", "cacheScope"} {
				if _, ok := r[k]; ok {
					t.Errorf("2025-11-25 result carries %s: %v", k, r)
				}
			}
			return
		}
		if r["resultType"] != "complete" {
			t.Errorf("resultType = %v, want complete", r["resultType"])
		}
		if n := path(t, r, "_meta", "io.modelcontextprotocol/serverInfo", "name"); n != "mcpstream-test" {
			t.Errorf("_meta serverInfo name = %v", n)
		}
		if scope == "" {
			if _, ok := r["ttlMs"]; ok {
				t.Errorf("non-cacheable result carries ttlMs: %v", r)
			}
			return
		}
		if r["ttlMs"] != ttlMs || r["cacheScope"] != scope {
			t.Errorf("ttlMs/cacheScope = %v/%v, want %v/%v", r["ttlMs"], r["cacheScope"], ttlMs, scope)
		}
	}
}

func both(checks ...func(*testing.T, map[string]any)) func(*testing.T, map[string]any) {
	return func(t *testing.T, r map[string]any) {
		t.Helper()
		for _, c := range checks {
			c(t, r)
		}
	}
}

// names reads the field of each entry of a list result.
func names(t *testing.T, r map[string]any, list, field string) []string {
	t.Helper()
	items, ok := r[list].([]any)
	if !ok {
		t.Fatalf("%s = %v, want an array", list, r[list])
	}
	out := []string{}
	for _, x := range items {
		out = append(out, path(t, x, field).(string))
	}
	return out
}

func listOf(list, field string, want ...string) func(*testing.T, map[string]any) {
	return func(t *testing.T, r map[string]any) {
		t.Helper()
		if got := names(t, r, list, field); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", list, got, want)
		}
		if c, ok := r["nextCursor"]; ok {
			t.Errorf("single page carries nextCursor %v", c)
		}
	}
}

// contents checks a resources/read result's single item.
func contents(uri, mime, key, value string) func(*testing.T, map[string]any) {
	return func(t *testing.T, r map[string]any) {
		t.Helper()
		list, _ := r["contents"].([]any)
		if len(list) != 1 {
			t.Fatalf("contents = %v, want one item", r["contents"])
		}
		c := list[0].(map[string]any)
		if c["uri"] != uri || c["mimeType"] != mime {
			t.Errorf("contents[0] = %v, want uri %s mimeType %s", c, uri, mime)
		}
		got, _ := c[key].(string)
		if !strings.Contains(got, value) {
			t.Errorf("contents[0].%s = %q, want it to contain %q", key, got, value)
		}
		other := map[string]string{"text": "blob", "blob": "text"}[key]
		if _, ok := c[other]; ok {
			t.Errorf("contents[0] has both text and blob: %v", c)
		}
	}
}

func messages(n int, wantText ...string) func(*testing.T, map[string]any) {
	return func(t *testing.T, r map[string]any) {
		t.Helper()
		list, _ := r["messages"].([]any)
		if len(list) != n {
			t.Fatalf("messages = %v, want %d", r["messages"], n)
		}
		b, _ := json.Marshal(list)
		for _, w := range wantText {
			if !strings.Contains(string(b), w) {
				t.Errorf("messages %s lack %q", b, w)
			}
		}
		if r["description"] == "" || r["description"] == nil {
			t.Errorf("description missing: %v", r)
		}
	}
}

func emptyObject(t *testing.T, r map[string]any) {
	t.Helper()
	if len(r) != 0 {
		t.Errorf("result = %v, want {}", r)
	}
}

func uriData(uri string) func(*testing.T, json.RawMessage) {
	return func(t *testing.T, data json.RawMessage) {
		t.Helper()
		var d struct{ URI string }
		if json.Unmarshal(data, &d) != nil || d.URI != uri {
			t.Errorf("error data = %s, want {\"uri\":%q}", data, uri)
		}
	}
}

func TestHandleCatalog(t *testing.T) {
	const missingURI = "test://nonexistent-resource-for-conformance-testing"
	// Every case runs on both revisions; v2025 and v2026 are the
	// expectations (status and replySess are filled in per revision).
	cases := []struct {
		name           string
		method, params string
		noCatalog      bool
		v2025, v2026   want
	}{
		// resources/list, resources/templates/list
		{name: "resources/list", method: "resources/list", params: `{}`,
			v2025: want{result: listOf("resources", "uri", "test://static-binary", "test://static-text", "test://watched-resource")},
			v2026: want{result: listOf("resources", "uri", "test://static-binary", "test://static-text", "test://watched-resource")}},
		{name: "resources/list without params", method: "resources/list",
			v2025: want{result: listOf("resources", "uri", "test://static-binary", "test://static-text", "test://watched-resource")},
			v2026: want{result: listOf("resources", "uri", "test://static-binary", "test://static-text", "test://watched-resource")}},
		{name: "resources/templates/list", method: "resources/templates/list", params: `{}`,
			v2025: want{result: listOf("resourceTemplates", "uriTemplate", "test://template/{id}/data")},
			v2026: want{result: listOf("resourceTemplates", "uriTemplate", "test://template/{id}/data")}},
		{name: "resources/list with params not an object", method: "resources/list", params: `[1]`,
			v2025: want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},

		// resources/read
		{name: "read text", method: "resources/read", params: `{"uri":"test://static-text"}`,
			v2025: want{result: contents("test://static-text", "text/plain", "text", "This is the content of the static text resource.")},
			v2026: want{result: contents("test://static-text", "text/plain", "text", "This is the content of the static text resource.")}},
		{name: "read binary", method: "resources/read", params: `{"uri":"test://static-binary"}`,
			v2025: want{result: contents("test://static-binary", "image/png", "blob", "iVBORw0KGgo")},
			v2026: want{result: contents("test://static-binary", "image/png", "blob", "iVBORw0KGgo")}},
		{name: "read template", method: "resources/read", params: `{"uri":"test://template/123/data"}`,
			v2025: want{result: contents("test://template/123/data", "application/json", "text", `"id":"123"`)},
			v2026: want{result: contents("test://template/123/data", "application/json", "text", `"id":"123"`)}},
		{name: "read unknown: -32002 before 2026, -32602 after (SEP-2164), uri in data", method: "resources/read", params: `{"uri":"` + missingURI + `"}`,
			v2025: want{errCode: -32002, errData: uriData(missingURI)},
			v2026: want{errCode: jsonrpc.CodeInvalidParams, errData: uriData(missingURI)}},
		{name: "read without uri", method: "resources/read", params: `{}`,
			v2025: want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},
		{name: "read with empty uri", method: "resources/read", params: `{"uri":""}`,
			v2025: want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},
		{name: "read with uri not a string", method: "resources/read", params: `{"uri":5}`,
			v2025: want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},

		// subscriptions: accepted on 2025-11-25, removed in 2026-07-28
		{name: "resources/subscribe", method: "resources/subscribe", params: `{"uri":"test://watched-resource"}`,
			v2025: want{result: emptyObject}, v2026: want{status: 404, errCode: jsonrpc.CodeMethodNotFound}},
		{name: "resources/unsubscribe", method: "resources/unsubscribe", params: `{"uri":"test://watched-resource"}`,
			v2025: want{result: emptyObject}, v2026: want{status: 404, errCode: jsonrpc.CodeMethodNotFound}},
		{name: "resources/subscribe without uri", method: "resources/subscribe", params: `{}`,
			v2025: want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{status: 404, errCode: jsonrpc.CodeMethodNotFound}},

		// prompts
		{name: "prompts/list", method: "prompts/list", params: `{}`,
			v2025: want{result: listOf("prompts", "name", "test_input_required_result_prompt", "test_prompt_with_arguments", "test_prompt_with_embedded_resource", "test_prompt_with_image", "test_simple_prompt")},
			v2026: want{result: listOf("prompts", "name", "test_input_required_result_prompt", "test_prompt_with_arguments", "test_prompt_with_embedded_resource", "test_prompt_with_image", "test_simple_prompt")}},
		{name: "prompts/get simple", method: "prompts/get", params: `{"name":"test_simple_prompt"}`,
			v2025: want{result: messages(1, "This is a simple prompt for testing.")},
			v2026: want{result: messages(1, "This is a simple prompt for testing.")}},
		{name: "prompts/get with arguments", method: "prompts/get", params: `{"name":"test_prompt_with_arguments","arguments":{"arg1":"testValue1","arg2":"testValue2"}}`,
			v2025: want{result: messages(1, "arg1='testValue1'", "arg2='testValue2'")},
			v2026: want{result: messages(1, "arg1='testValue1'", "arg2='testValue2'")}},
		{name: "prompts/get embedded resource", method: "prompts/get", params: `{"name":"test_prompt_with_embedded_resource","arguments":{"resourceUri":"test://example-resource"}}`,
			v2025: want{result: messages(2, `"type":"resource"`, "test://example-resource")},
			v2026: want{result: messages(2, `"type":"resource"`, "test://example-resource")}},
		{name: "prompts/get image", method: "prompts/get", params: `{"name":"test_prompt_with_image"}`,
			v2025: want{result: messages(2, `"type":"image"`, `"mimeType":"image/png"`)},
			v2026: want{result: messages(2, `"type":"image"`, `"mimeType":"image/png"`)}},
		{name: "prompts/get missing a required argument", method: "prompts/get", params: `{"name":"test_prompt_with_arguments","arguments":{"arg1":"x"}}`,
			v2025: want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},
		{name: "prompts/get unknown", method: "prompts/get", params: `{"name":"nope"}`,
			v2025: want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},
		{name: "prompts/get without name", method: "prompts/get", params: `{"arguments":{}}`,
			v2025: want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},
		{name: "prompts/get with a non-string argument", method: "prompts/get", params: `{"name":"test_prompt_with_arguments","arguments":{"arg1":1,"arg2":"b"}}`,
			v2025: want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},

		// completion
		{name: "completion/complete of a prompt argument", method: "completion/complete",
			params: `{"ref":{"type":"ref/prompt","name":"test_prompt_with_arguments"},"argument":{"name":"arg1","value":"test"}}`,
			v2025:  want{result: completionValues()}, v2026: want{result: completionValues()}},
		{name: "completion/complete of a template variable", method: "completion/complete",
			params: `{"ref":{"type":"ref/resource","uri":"test://template/{id}/data"},"argument":{"name":"id","value":""},"context":{"arguments":{}}}`,
			v2025:  want{result: completionValues()}, v2026: want{result: completionValues()}},
		{name: "completion/complete of an unknown prompt", method: "completion/complete",
			params: `{"ref":{"type":"ref/prompt","name":"nope"},"argument":{"name":"a","value":""}}`,
			v2025:  want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},
		{name: "completion/complete of an unknown template", method: "completion/complete",
			params: `{"ref":{"type":"ref/resource","uri":"test://nope/{x}"},"argument":{"name":"x","value":""}}`,
			v2025:  want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},
		{name: "completion/complete with an unknown ref type", method: "completion/complete",
			params: `{"ref":{"type":"ref/tool","name":"x"},"argument":{"name":"a","value":""}}`,
			v2025:  want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},
		{name: "completion/complete without argument", method: "completion/complete",
			params: `{"ref":{"type":"ref/prompt","name":"test_simple_prompt"}}`,
			v2025:  want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},
		{name: "completion/complete without argument value", method: "completion/complete",
			params: `{"ref":{"type":"ref/prompt","name":"test_simple_prompt"},"argument":{"name":"a"}}`,
			v2025:  want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},
		{name: "completion/complete without ref", method: "completion/complete", params: `{"argument":{"name":"a","value":""}}`,
			v2025: want{errCode: jsonrpc.CodeInvalidParams}, v2026: want{errCode: jsonrpc.CodeInvalidParams}},

		// without a catalog, nothing of it exists
		{name: "no catalog: resources/list", method: "resources/list", params: `{}`, noCatalog: true,
			v2025: want{errCode: jsonrpc.CodeMethodNotFound}, v2026: want{status: 404, errCode: jsonrpc.CodeMethodNotFound}},
		{name: "no catalog: resources/read", method: "resources/read", params: `{"uri":"test://static-text"}`, noCatalog: true,
			v2025: want{errCode: jsonrpc.CodeMethodNotFound}, v2026: want{status: 404, errCode: jsonrpc.CodeMethodNotFound}},
		{name: "no catalog: resources/subscribe", method: "resources/subscribe", params: `{"uri":"x://1"}`, noCatalog: true,
			v2025: want{errCode: jsonrpc.CodeMethodNotFound}, v2026: want{status: 404, errCode: jsonrpc.CodeMethodNotFound}},
		{name: "no catalog: prompts/list", method: "prompts/list", params: `{}`, noCatalog: true,
			v2025: want{errCode: jsonrpc.CodeMethodNotFound}, v2026: want{status: 404, errCode: jsonrpc.CodeMethodNotFound}},
		{name: "no catalog: completion/complete", method: "completion/complete", noCatalog: true,
			params: `{"ref":{"type":"ref/prompt","name":"x"},"argument":{"name":"a","value":""}}`,
			v2025:  want{errCode: jsonrpc.CodeMethodNotFound}, v2026: want{status: 404, errCode: jsonrpc.CodeMethodNotFound}},
	}

	// Caching hints each method's 2026-07-28 result must carry.
	hints := map[string]struct {
		ttl   float64
		scope string
	}{
		"resources/list":           {60000, "public"},
		"resources/templates/list": {60000, "public"},
		"prompts/list":             {60000, "public"},
	}
	readHints := map[string]float64{
		"test://static-text":       60000,
		"test://static-binary":     60000,
		"test://template/123/data": 60000,
	}

	for _, tc := range cases {
		for _, rev := range revisions {
			w := tc.v2025
			if rev.stateless {
				w = tc.v2026
			}
			t.Run(rev.name+"/"+tc.name, func(t *testing.T) {
				env := catalogEnv(t)
				if tc.noCatalog {
					env.Catalog = nil
				}
				var st *schemas.SessionState
				if !rev.stateless {
					st = session(schemas.SessionActive)
				}
				e := rev.on(tc.method, tc.params)
				if w.status == 0 {
					w.status = 200
				}
				w.replySess = e.SessionID
				if w.result != nil {
					h, scope := hints[tc.method], hints[tc.method].scope
					if tc.method == "resources/read" {
						var p struct{ URI string }
						_ = json.Unmarshal([]byte(tc.params), &p)
						h.ttl, scope = readHints[p.URI], "public"
					}
					if tc.method == "resources/subscribe" || tc.method == "resources/unsubscribe" {
						w.result = both(w.result) // {} exactly, no decorations (2025-11-25 only)
					} else {
						w.result = both(w.result, decorations(rev, h.ttl, scope))
					}
				}
				var before schemas.SessionState
				if st != nil {
					before = *st
				}
				out := sessions.Handle(env, st, e, nextOff, now)
				checkReply(t, out.Reply, e, w)
				// A subscription is session state (subscriptions_test.go).
				if out.State != nil && tc.method != "resources/subscribe" || out.Forward != nil {
					t.Errorf("catalog request wrote state %+v or forwarded %+v", out.State, out.Forward)
				}
				if st != nil && !reflect.DeepEqual(*st, before) {
					t.Errorf("Handle modified the input state")
				}
			})
		}
	}
}

func completionValues() func(*testing.T, map[string]any) {
	return func(t *testing.T, r map[string]any) {
		t.Helper()
		v, ok := path(t, r, "completion", "values").([]any)
		if !ok || len(v) != 0 {
			t.Errorf("completion.values = %v, want []", path(t, r, "completion", "values"))
		}
	}
}

func TestHandleCatalogWatchedResourceIsNotCachedLong(t *testing.T) {
	out := sessions.Handle(catalogEnv(t), nil, req("resources/read", `{"uri":"test://watched-resource"}`, stateless), nextOff, now)
	b := decodeBody(t, out.Reply.Message)
	if b.Result["ttlMs"] != float64(0) || b.Result["cacheScope"] != "public" {
		t.Errorf("ttlMs/cacheScope = %v/%v, want 0/public", b.Result["ttlMs"], b.Result["cacheScope"])
	}
}

// TestHandleCatalogActivity: catalog requests change nothing but the
// activity time, which they write once it is stale, like any request.
func TestHandleCatalogActivity(t *testing.T) {
	for _, m := range []struct{ method, params string }{
		{"resources/read", `{"uri":"test://static-text"}`},
		{"resources/read", `{"uri":"test://none"}`},
		{"resources/unsubscribe", `{"uri":"test://watched-resource"}`},
		{"prompts/get", `{"name":"test_simple_prompt"}`},
	} {
		t.Run(m.method+m.params, func(t *testing.T) {
			st := session(schemas.SessionActive, stale)
			out := sessions.Handle(catalogEnv(t), st, req(m.method, m.params), nextOff, now)
			if out.Reply == nil || out.State == nil {
				t.Fatalf("reply %+v, state %+v; want both", out.Reply, out.State)
			}
			wantTouched(st)(t, out.State)
		})
	}
}

func TestHandleCatalogCapabilities(t *testing.T) {
	init := req("initialize", `{"protocolVersion":"2025-11-25"}`)
	discover := req("server/discover", `{}`, stateless)
	for _, tc := range []struct {
		name    string
		catalog sessions.Catalog
		want    []string
	}{
		{"conformance catalog", conformanceCatalog(t), []string{"completions", "logging", "prompts", "resources", "tools"}},
		{"no catalog", nil, []string{"logging", "tools"}},
		{"empty catalog", func() sessions.Catalog {
			c, err := tools.NewCatalogRegistry(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return c
		}(), []string{"logging", "tools"}},
	} {
		for _, e := range []*schemas.RequestEvent{init, discover} {
			t.Run(tc.name+"/"+e.Method, func(t *testing.T) {
				env := testEnv()
				env.Catalog = tc.catalog
				out := sessions.Handle(env, nil, e, nextOff, now)
				caps, ok := decodeBody(t, out.Reply.Message).Result["capabilities"].(map[string]any)
				if !ok {
					t.Fatalf("no capabilities in %s", out.Reply.Message)
				}
				var got []string
				if e.Method == "server/discover" {
					// 2026-07-28 clients also learn of the tasks extension.
					ext, _ := caps["extensions"].(map[string]any)
					if _, ok := ext[sessions.TasksExtension]; !ok || len(ext) != 1 {
						t.Errorf("extensions %v, want only %s", caps["extensions"], sessions.TasksExtension)
					}
					delete(caps, "extensions")
					if _, ok := caps["tasks"]; ok {
						t.Error("2026-07-28 discover advertises 2025-11-25 tasks")
					}
				} else {
					// 2025-11-25: task-augmented tools/call and tasks/cancel,
					// no tasks/list.
					tasks, _ := caps["tasks"].(map[string]any)
					if _, ok := tasks["cancel"]; !ok || tasks["list"] != nil || tasks["requests"] == nil {
						t.Errorf("tasks capability %v", caps["tasks"])
					}
					delete(caps, "tasks")
				}
				for k, v := range caps {
					got = append(got, k)
					// Nothing served here delivers notifications yet:
					// advertising listChanged or subscribe would make the
					// suite (and clients) wait for them.
					if m, _ := v.(map[string]any); len(m) != 0 {
						t.Errorf("capability %s = %v, want {}", k, v)
					}
				}
				sortStrings(got)
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("capabilities %v, want %v", got, tc.want)
				}
			})
		}
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// page requests one page of a list and returns its entries and cursor.
func page(t *testing.T, env sessions.Env, rev revision, method, cursor string) (map[string]any, string) {
	t.Helper()
	params := `{}`
	if cursor != "" {
		params = fmt.Sprintf(`{"cursor":%q}`, cursor)
	}
	var st *schemas.SessionState
	if !rev.stateless {
		st = session(schemas.SessionActive)
	}
	out := sessions.Handle(env, st, rev.on(method, params), nextOff, now)
	if out.Reply == nil {
		t.Fatal("no reply")
	}
	b := decodeBody(t, out.Reply.Message)
	if b.Error != nil {
		t.Fatalf("%s page after %q: error %d %s", method, cursor, b.Error.Code, b.Error.Message)
	}
	next, _ := b.Result["nextCursor"].(string)
	if _, ok := b.Result["nextCursor"]; ok && next == "" {
		t.Errorf("nextCursor present but empty")
	}
	return b.Result, next
}

var lists = []struct{ method, field, key string }{
	{"tools/list", "tools", "name"},
	{"resources/list", "resources", "uri"},
	{"resources/templates/list", "resourceTemplates", "uriTemplate"},
	{"prompts/list", "prompts", "name"},
}

func TestHandleCatalogPagination(t *testing.T) {
	for _, rev := range revisions {
		for _, l := range lists {
			full, next := page(t, catalogEnv(t), rev, l.method, "")
			if next != "" {
				t.Fatalf("%s: the default page size split a list of %d", l.method, len(full[l.field].([]any)))
			}
			want := names(t, full, l.field, l.key)
			for _, size := range []int{1, 2, 3, len(want), len(want) + 1} {
				t.Run(fmt.Sprintf("%s/%s/size %d", rev.name, l.method, size), func(t *testing.T) {
					env := catalogEnv(t)
					env.PageSize = size
					var got []string
					cursor := ""
					for pages := 0; ; pages++ {
						if pages > len(want) {
							t.Fatalf("more than %d pages: the cursor does not advance", len(want))
						}
						r, next := page(t, env, rev, l.method, cursor)
						entries := names(t, r, l.field, l.key)
						if len(entries) > size || (next != "" && len(entries) != size) {
							t.Fatalf("page %d has %d entries with next %q; page size %d", pages, len(entries), next, size)
						}
						got = append(got, entries...)
						if next == "" {
							break
						}
						cursor = next
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("paged %v, want %v", got, want)
					}
				})
			}
		}
	}
}

func TestHandleCatalogCursors(t *testing.T) {
	key := []byte("deployment key")
	env := catalogEnv(t)
	env.PageSize, env.Cursors = 1, sessions.NewCursors(key)
	for _, rev := range revisions {
		_, promptCursor := page(t, env, rev, "prompts/list", "")
		_, toolCursor := page(t, env, rev, "tools/list", "")
		if promptCursor == "" || toolCursor == "" {
			t.Fatal("page size 1 gave no cursor")
		}
		raw, err := base64.RawURLEncoding.DecodeString(promptCursor)
		if err != nil {
			t.Fatalf("cursor %q is not base64url: %v", promptCursor, err)
		}
		flip := func(i int) string {
			b := append([]byte(nil), raw...)
			b[i] ^= 1
			return base64.RawURLEncoding.EncodeToString(b)
		}
		// The name is in clear: forging a cursor means changing it and
		// keeping a valid signature.
		forgedName := append([]byte{raw[0]}, []byte("test_prompt_with_image")...)
		forgedName = append(forgedName, raw[len(raw)-16:]...)

		other := catalogEnv(t)
		other.PageSize, other.Cursors = 1, sessions.NewCursors([]byte("another deployment"))
		same := catalogEnv(t)
		same.PageSize, same.Cursors = 1, sessions.NewCursors(key)

		for _, tc := range []struct {
			name   string
			env    sessions.Env
			params string
			ok     bool
		}{
			{"valid cursor", env, fmt.Sprintf(`{"cursor":%q}`, promptCursor), true},
			{"valid cursor on another instance with the same key", same, fmt.Sprintf(`{"cursor":%q}`, promptCursor), true},
			{"empty cursor means the first page", env, `{"cursor":""}`, true},
			{"cursor with a flipped name byte", env, fmt.Sprintf(`{"cursor":%q}`, flip(3)), false},
			{"cursor with a flipped signature byte", env, fmt.Sprintf(`{"cursor":%q}`, flip(len(raw)-1)), false},
			{"cursor with a flipped version byte", env, fmt.Sprintf(`{"cursor":%q}`, flip(0)), false},
			{"cursor naming another entry", env, fmt.Sprintf(`{"cursor":%q}`, base64.RawURLEncoding.EncodeToString(forgedName)), false},
			{"truncated cursor", env, fmt.Sprintf(`{"cursor":%q}`, promptCursor[:len(promptCursor)-4]), false},
			{"cursor of another list", env, fmt.Sprintf(`{"cursor":%q}`, toolCursor), false},
			{"cursor signed with another key", other, fmt.Sprintf(`{"cursor":%q}`, promptCursor), false},
			{"cursor not base64", env, `{"cursor":"!!!not a cursor!!!"}`, false},
			{"made-up cursor", env, `{"cursor":"eyJwYWdlIjogM30="}`, false},
			{"cursor not a string", env, `{"cursor":3}`, false},
		} {
			t.Run(rev.name+"/"+tc.name, func(t *testing.T) {
				var st *schemas.SessionState
				if !rev.stateless {
					st = session(schemas.SessionActive)
				}
				e := rev.on("prompts/list", tc.params)
				w := want{status: 200, replySess: e.SessionID, result: func(*testing.T, map[string]any) {}}
				if !tc.ok {
					w = want{status: 200, replySess: e.SessionID, errCode: jsonrpc.CodeInvalidParams}
				}
				checkReply(t, sessions.Handle(tc.env, st, e, nextOff, now).Reply, e, w)
			})
		}
	}
}

// TestProcessorServesCatalog drives the goka processor with a catalog and a
// page size in its Config, the way the platform wires it.
func TestProcessorServesCatalog(t *testing.T) {
	tt := tester.New(t)
	tr, err := tools.NewRegistry(conformance.New())
	if err != nil {
		t.Fatal(err)
	}
	processortest.Start(t, tt, func(opts []goka.ProcessorOption) (processortest.Runner, error) {
		return sessions.New(schemas.MustLoad(), tr, sessions.Config{ClientID: "sessions-catalog-test", Options: opts,
			Catalog: conformanceCatalog(t), PageSize: 2, CursorKey: []byte("k")})
	})
	topics := streams.Topics{}
	replies := tt.NewQueueTracker(topics.Replies())

	send := func(id, method, params string) map[string]any {
		t.Helper()
		e := &schemas.RequestEvent{EventID: "ev-" + id, Kind: schemas.KindRequest, Principal: alice, Method: method,
			Params: []byte(params), RPCID: []byte(`1`), ReplyGateway: gw, ReplyToken: id, ReceivedAt: now,
			ProtocolVersion: "2026-07-28"}
		tt.Consume(topics.Requests(), e.EventID, e)
		_, r := nextReply(t, replies)
		b := decodeBody(t, r.Message)
		if b.Error != nil {
			t.Fatalf("%s: error %d %s", method, b.Error.Code, b.Error.Message)
		}
		return b.Result
	}
	first := send("t1", "prompts/list", `{}`)
	if got := names(t, first, "prompts", "name"); !reflect.DeepEqual(got, []string{"test_input_required_result_prompt", "test_prompt_with_arguments"}) {
		t.Fatalf("first page %v", got)
	}
	cursor, _ := first["nextCursor"].(string)
	second := send("t2", "prompts/list", fmt.Sprintf(`{"cursor":%q}`, cursor))
	if got := names(t, second, "prompts", "name"); !reflect.DeepEqual(got, []string{"test_prompt_with_embedded_resource", "test_prompt_with_image"}) {
		t.Fatalf("second page %v", got)
	}
	cursor, _ = second["nextCursor"].(string)
	last := send("t2b", "prompts/list", fmt.Sprintf(`{"cursor":%q}`, cursor))
	if got := names(t, last, "prompts", "name"); !reflect.DeepEqual(got, []string{"test_simple_prompt"}) {
		t.Fatalf("last page %v", got)
	}
	if _, ok := last["nextCursor"]; ok {
		t.Errorf("last page carries nextCursor")
	}
	read := send("t3", "resources/read", `{"uri":"test://static-text"}`)
	if read["resultType"] != "complete" || read["cacheScope"] != "public" {
		t.Errorf("resources/read = %v", read)
	}
	disc := send("t4", "server/discover", `{}`)
	path(t, disc, "capabilities", "resources")
	path(t, disc, "capabilities", "prompts")
	path(t, disc, "capabilities", "completions")
	noMore(t, "reply", replies)
}

func TestNewRejectsNegativePageSize(t *testing.T) {
	tr, err := tools.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sessions.New(schemas.MustLoad(), tr, sessions.Config{ClientID: "x", PageSize: -1}); err == nil {
		t.Fatal("negative PageSize accepted")
	}
}

// metaProvider is a resource provider whose reads carry _meta, or fail with
// the error set for the URI.
type metaProvider struct{ errs map[string]error }

func (metaProvider) Name() string { return "meta" }
func (metaProvider) ListResources(context.Context) ([]tools.Resource, error) {
	return []tools.Resource{{URI: "m://ok", Name: "ok"}, {URI: "m://rpc", Name: "rpc"}, {URI: "m://boom", Name: "boom"}, {URI: "m://arg", Name: "arg"}}, nil
}
func (metaProvider) ListResourceTemplates(context.Context) ([]tools.ResourceTemplate, error) {
	return nil, nil
}
func (p metaProvider) ReadResource(_ context.Context, uri string) (*tools.ReadResourceResult, error) {
	if err := p.errs[uri]; err != nil {
		return nil, err
	}
	return &tools.ReadResourceResult{Contents: []tools.ResourceContents{{URI: uri, Text: "x"}}, Meta: json.RawMessage(`{"k":1}`)}, nil
}

func TestHandleCatalogProviderMetaAndErrors(t *testing.T) {
	c, err := tools.NewCatalogRegistry(context.Background(), metaProvider{errs: map[string]error{
		"m://rpc":  &tools.RPCError{Code: -32042, Message: "custom", Data: json.RawMessage(`{"x":true}`)},
		"m://boom": fmt.Errorf("disk on fire"),
		"m://arg":  &tools.ArgumentError{Msg: "bad range"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	env := testEnv()
	env.Catalog = c
	for _, rev := range revisions {
		t.Run(rev.name, func(t *testing.T) {
			var st *schemas.SessionState
			if !rev.stateless {
				st = session(schemas.SessionActive)
			}
			handle := func(uri string) body {
				t.Helper()
				out := sessions.Handle(env, st, rev.on("resources/read", fmt.Sprintf(`{"uri":%q}`, uri)), nextOff, now)
				if out.Reply == nil || out.Reply.HTTPStatus != 200 {
					t.Fatalf("reply %+v", out.Reply)
				}
				return decodeBody(t, out.Reply.Message)
			}
			ok := handle("m://ok")
			if k := path(t, ok.Result, "_meta", "k"); k != float64(1) {
				t.Errorf("provider _meta lost: %v", ok.Result["_meta"])
			}
			meta := ok.Result["_meta"].(map[string]any)
			if _, has := meta["io.modelcontextprotocol/serverInfo"]; has != rev.stateless {
				t.Errorf("_meta %v: serverInfo present %v, want %v", meta, has, rev.stateless)
			}
			// A read without caching hints from its provider is private and
			// immediately stale.
			if rev.stateless && (ok.Result["ttlMs"] != float64(0) || ok.Result["cacheScope"] != "private") {
				t.Errorf("ttlMs/cacheScope = %v/%v, want 0/private", ok.Result["ttlMs"], ok.Result["cacheScope"])
			}
			if e := handle("m://rpc").Error; e == nil || e.Code != -32042 || e.Message != "custom" || string(e.Data) != `{"x":true}` {
				t.Errorf("RPCError not passed through: %+v", e)
			}
			if e := handle("m://boom").Error; e == nil || e.Code != jsonrpc.CodeInternalError {
				t.Errorf("provider failure: %+v, want -32603", e)
			}
			if e := handle("m://arg").Error; e == nil || e.Code != jsonrpc.CodeInvalidParams || !strings.Contains(e.Message, "bad range") {
				t.Errorf("ArgumentError: %+v, want -32602 with its message", e)
			}
		})
	}
}
