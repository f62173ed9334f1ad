// Package sessions is the goka group that owns the session table and is the
// entry point of every MCP request: it consumes the request topic (keyed by
// session id, so one session's messages are handled in order by one
// instance), applies lifecycle changes to the session table, answers the
// methods that need no tool (initialize, ping, tools/list, server/discover),
// and forwards valid tools/call requests to the toolcalls group keyed by
// their event id.
//
// Start from New and Processor.Run. Handle is the pure decision function the
// goka callback wraps; it is what the unit tests drive.
package sessions
