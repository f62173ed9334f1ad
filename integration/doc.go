// Package integration holds mcpstream's end-to-end tests: real MCP clients
// (the official go-sdk) against the platform's roles running on a real
// Kafka-protocol broker (kfake, in-process), including failover, restart
// and duplicate-delivery scenarios, and the official conformance suite.
// Container-based suites live under integration/containers (build tag
// "containers").
package integration
