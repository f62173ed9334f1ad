// Package gateway is the only part of mcpstream that speaks MCP over HTTP.
// A Gateway is stateless: it turns each POST (and DELETE) on the MCP
// endpoint into a RequestEvent on the request topic, then waits for the
// ReplyEvents addressed to it on its reply partition and writes them to the
// client as JSON or SSE. Any replica can serve any session: the session
// lives in the processors' table, not here.
//
// Start from New, then serve Handler() and call Run (which owns the reply
// consumer). Both revisions share the endpoint: requests with
// Mcp-Session-Id or an initialize are 2025-11-25 style; requests carrying
// MCP-Protocol-Version 2026-07-28 and _meta are stateless.
package gateway
