// Package conformance is the built-in tool provider named "conformance": the
// fixed tools that the official MCP conformance suite
// (@modelcontextprotocol/conformance) calls by name, returning exactly the
// content its server scenarios assert.
//
// The tools and what each scenario checks are listed in
// ops/conformance/SCENARIOS.md. Tools that depend on the transport (logging
// gated by the client's log level, -32021 mapped to HTTP 400, list-changed
// delivery) only do their part here; the gateway and the Notifier it passes
// in do the rest.
package conformance
