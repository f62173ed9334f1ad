// Package platform assembles mcpstream's roles (embedded broker, goka
// processors, executor, gateway) into one process, with metrics and health
// endpoints, so that cmd/ stays a flag parser. `mcpstream run` is Run with
// every role; `mcpstream gateway` is Run with only the gateway, and so on.
package platform
