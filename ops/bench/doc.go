// Package bench is a load generator for MCP servers that speak the
// Streamable HTTP transport.
//
// Run opens a fixed number of sessions with the official go-sdk client and has
// each one call a single tool back to back for a fixed time, so the numbers it
// reports (throughput and latency percentiles) describe the server and the
// transport rather than the load generator. StartReference serves the same
// tool from the official go-sdk server in-process, which is the yardstick
// mcpstream is compared against; FormatComparison prints the two results side
// by side.
//
// A run is bounded in time and only ever talks to Config.URL, so it is safe to
// point at a shared development server.
package bench
