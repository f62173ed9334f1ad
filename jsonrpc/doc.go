// Package jsonrpc holds the JSON-RPC 2.0 pieces shared by the gateway and
// the processors: error codes (JSON-RPC's and MCP's), and the "body" form in
// which replies travel through Kafka: a response without its id
// ({"result":...} or {"error":...}), which the gateway completes with the id
// of the HTTP request it answers. Keeping the id out of the stored body is
// what lets one stored result answer a retry that arrives with another id
// (an explicit idempotency key) without rewriting it.
package jsonrpc
