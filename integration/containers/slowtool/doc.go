// Command slowtool is the container suite's upstream MCP server (Streamable
// HTTP, the official go-sdk server). Its one tool, "progress", reports
// progress at a fixed pace and then answers with the id it was given, so a
// client can tell its own result from another call's. It counts how often
// each id was executed and serves the counts at GET /executions: the suite
// checks "each call executed exactly once" against the tool itself, not
// only against the platform's metrics.
//
//	slowtool --listen 0.0.0.0:8080
//
// The processors reach it as an upstream (mcpstream --upstreams), so its
// tool appears as "<upstream name>.progress".
package main
