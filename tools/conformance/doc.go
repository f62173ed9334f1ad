// Package conformance is the built-in provider named "conformance": the
// fixed tools, resources, resource templates and prompts that the official
// MCP conformance suite (@modelcontextprotocol/conformance) calls by name,
// returning exactly the content its server scenarios assert. One Provider
// value is a tools.Provider (pass it to tools.NewRegistry) and a
// tools.ResourceProvider, tools.PromptProvider and tools.Completer (pass the
// same value to tools.NewCatalogRegistry).
//
// The tools and what each scenario checks are listed in
// ops/conformance/SCENARIOS.md. Tools that depend on the transport (logging
// gated by the client's log level, -32021 mapped to HTTP 400, list-changed
// delivery) only do their part here; the gateway and the Notifier it passes
// in do the rest.
package conformance
