package sessions

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/schemas"
)

// paramHeadersMeta mirrors gateway.ParamHeadersMeta (the gateway imports
// this package's neighbours, not the reverse).
const paramHeadersMeta = "io.mcpstream/paramHeaders"

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
	_ = json.Unmarshal(p.Meta[paramHeadersMeta], &headers)
	for name, prop := range schema.Properties {
		if prop.Header == "" {
			continue
		}
		raw, ok := args[name]
		if !ok {
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
