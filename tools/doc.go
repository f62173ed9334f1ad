// Package tools defines how mcpstream gets tools: the Provider interface
// that built-in providers and upstream MCP servers implement, and the
// Registry that merges them into one tools/list.
//
// Start from Provider. A provider never sees Kafka: executors call it with
// a context that is cancelled when the client cancels or the call times out,
// and a Notifier whose messages travel back through the log in order.
package tools
