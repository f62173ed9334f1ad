package gateway

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors"
)

const paramHeaderPrefix = "Mcp-Param-"

// withParamHeaders decodes the request's Mcp-Param-* headers into params.
// A header that is not valid (bad Base64 inside =?base64?...?=, control
// characters) is refused here, with -32020 as SEP-2243 asks.
func withParamHeaders(params json.RawMessage, h http.Header) (json.RawMessage, *jsonrpc.Error) {
	found := map[string]string{}
	for name, vals := range h {
		if len(name) <= len(paramHeaderPrefix) || !strings.EqualFold(name[:len(paramHeaderPrefix)], paramHeaderPrefix) || len(vals) == 0 {
			continue
		}
		v, ok := decodeHeaderValue(vals[0])
		if !ok {
			return nil, jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: %s header value is not valid (Base64 or characters)", name)
		}
		found[strings.ToLower(name[len(paramHeaderPrefix):])] = v
	}
	var p map[string]json.RawMessage
	if len(params) == 0 || json.Unmarshal(params, &p) != nil || p == nil {
		if len(found) == 0 {
			return params, nil
		}
		p = map[string]json.RawMessage{}
	}
	var meta map[string]json.RawMessage
	if raw, ok := p["_meta"]; ok {
		if json.Unmarshal(raw, &meta) != nil {
			return params, nil // malformed _meta: the processor reports it
		}
	}
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	enc, err := json.Marshal(found)
	if err != nil {
		return params, nil
	}
	// Always present on tools/call, even empty: "no headers" is what the
	// processor must be able to tell from "headers not recorded".
	meta[processors.ParamHeadersMeta] = enc
	if p["_meta"], err = json.Marshal(meta); err != nil {
		return params, nil
	}
	out, err := json.Marshal(p)
	if err != nil {
		return params, nil
	}
	return out, nil
}
