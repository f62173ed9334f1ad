package sessions

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors"
	"github.com/mcpstream/mcpstream/schemas"
)

// checkParamHeaders enforces SEP-2243 custom headers: an argument whose
// input-schema property carries "x-mcp-header": NAME must come with an
// Mcp-Param-NAME header of the same value, so that intermediaries routing
// on the header see what the tool will get. A missing or different header
// is -32020 (HTTP 400).
func checkParamHeaders(env Env, ev *schemas.RequestEvent, job *schemas.ToolJob) *jsonrpc.Error {
	i := sort.Search(len(env.Tools), func(i int) bool { return env.Tools[i].Name >= job.Tool })
	if i >= len(env.Tools) || env.Tools[i].Name != job.Tool {
		return nil
	}
	var schema struct {
		Properties map[string]struct {
			Header string `json:"x-mcp-header"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	if json.Unmarshal(env.Tools[i].InputSchema, &schema) != nil {
		return nil
	}
	var args map[string]json.RawMessage
	_ = json.Unmarshal(job.Arguments, &args)
	var p struct {
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	_ = json.Unmarshal(orEmpty(ev.Params), &p)
	headers := map[string]string{}
	_ = json.Unmarshal(p.Meta[processors.ParamHeadersMeta], &headers)
	for name, prop := range schema.Properties {
		if prop.Header == "" {
			continue
		}
		raw, ok := args[name]
		if !ok {
			if _, sent := headers[strings.ToLower(prop.Header)]; sent {
				return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Param-%s header sent without argument %s", prop.Header, name)
			}
			continue
		}
		want := headerForm(raw)
		got, present := headers[strings.ToLower(prop.Header)]
		switch {
		case !present:
			return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Param-%s header is required (argument %s)", prop.Header, name)
		case got != want:
			return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Param-%s header value %q does not match argument %s %q", prop.Header, got, name, want)
		}
	}
	return nil
}

// headerForm is an argument as a header carries it: strings as they are,
// numbers and booleans as their JSON text.
func headerForm(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return fmt.Sprint(strings.TrimSpace(string(raw)))
}

// checkRequired refuses a call that lacks an argument its tool's input
// schema requires (-32602), before a job exists: the tool would fail or,
// worse, run on a default.
func checkRequired(env Env, job *schemas.ToolJob) *jsonrpc.Error {
	var schema struct {
		Required []string `json:"required"`
	}
	if !inputSchema(env, job.Tool, &schema) || len(schema.Required) == 0 {
		return nil
	}
	var args map[string]json.RawMessage
	_ = json.Unmarshal(job.Arguments, &args)
	for _, name := range schema.Required {
		if _, ok := args[name]; !ok {
			return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid arguments for tool %s: missing required argument %q", job.Tool, name)
		}
	}
	return nil
}

// inputSchema decodes the input schema of tool (env.Tools is sorted by
// name) into v; false when the tool or a readable schema is missing.
func inputSchema(env Env, tool string, v any) bool {
	i := sort.Search(len(env.Tools), func(i int) bool { return env.Tools[i].Name >= tool })
	return i < len(env.Tools) && env.Tools[i].Name == tool && json.Unmarshal(env.Tools[i].InputSchema, v) == nil
}
