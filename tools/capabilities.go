package tools

import (
	"context"
	"encoding/json"
)

// Call carries no client capabilities (its shape is fixed), yet a tool must
// refuse to rely on a capability the client did not declare. Executors
// therefore attach the capabilities to the call's context: on the 2026-07-28
// wire they come from each request's
// _meta["io.modelcontextprotocol/clientCapabilities"], on the 2025-11-25
// wire from the session's initialize request.

type clientCapsKey struct{}

// WithClientCapabilities returns a copy of ctx carrying the raw
// ClientCapabilities object the client declared for the current request.
func WithClientCapabilities(ctx context.Context, caps json.RawMessage) context.Context {
	return context.WithValue(ctx, clientCapsKey{}, caps)
}

// ClientCapabilities returns the raw ClientCapabilities attached by
// WithClientCapabilities, and whether any were attached.
func ClientCapabilities(ctx context.Context) (json.RawMessage, bool) {
	caps, ok := ctx.Value(clientCapsKey{}).(json.RawMessage)
	return caps, ok
}

// HasClientCapability reports whether the client declared the named
// top-level capability (e.g. "sampling", "elicitation", "roots") with a
// non-null value. Unknown or unparseable capabilities count as not declared:
// the spec forbids relying on anything the client did not clearly declare.
func HasClientCapability(ctx context.Context, name string) bool {
	raw, ok := ClientCapabilities(ctx)
	if !ok || len(raw) == 0 {
		return false
	}
	var caps map[string]json.RawMessage
	if err := json.Unmarshal(raw, &caps); err != nil {
		return false
	}
	v, ok := caps[name]
	return ok && string(v) != "null"
}
