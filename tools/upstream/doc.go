// Package upstream federates tools from other MCP servers ("upstreams"):
// each configured upstream becomes a tools.Provider whose tools appear as
// "<name>.<tool>" next to the built-in ones and run through the executors
// like any tool.
//
// Start from Load (the config file) and New (one Provider per upstream):
//
//	cfgs, err := upstream.Load("upstreams.json")
//	ups, err := upstream.NewAll(cfgs, upstream.Options{Logger: log})
//	defer func() { for _, u := range ups { u.Close() } }()
//	providers := []tools.Provider{conformance.New()}
//	for _, u := range ups {
//		providers = append(providers, u)
//	}
//	reg, err := tools.NewRegistryContext(ctx, providers...)
//
// # Config file
//
// JSON, unknown fields rejected, durations as Go duration strings:
//
//	{
//	  "upstreams": [
//	    {
//	      "name": "everything",
//	      "stdio": {
//	        "command": "node",
//	        "args": ["node_modules/@modelcontextprotocol/server-everything/dist/index.js"],
//	        "env": {"API_KEY": "${EVERYTHING_API_KEY}"},
//	        "inheritEnv": false,
//	        "dir": ".cache/upstreams"
//	      },
//	      "stateless": false,
//	      "protocolVersion": "2025-11-25",
//	      "timeouts": {"connect": "30s", "call": "2m", "list": "30s", "idle": "5m", "acquire": "10s", "shutdown": "2s"},
//	      "pool": {"size": 4},
//	      "breaker": {"failures": 5, "openFor": "30s", "halfOpenProbes": 1}
//	    },
//	    {
//	      "name": "remote",
//	      "http": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ${REMOTE_TOKEN}"}}
//	    }
//	  ]
//	}
//
// Only name and one transport (stdio.command or http.url) are required;
// Config documents every field and its default. "${NAME}" in env and header
// values is taken from mcpstream's environment when the file is loaded.
//
// # Sessions, pool, breaker
//
// A downstream session's calls go to an upstream session of its own (a
// process of its own, for stdio), opened on its first call and closed after
// the idle timeout, by CloseSession, or by Close: an upstream that keeps
// per-session state never mixes users. Calls without a downstream session
// (the stateless 2026-07-28 revision), and every call of an upstream
// configured "stateless", borrow a pooled session for the duration of the
// call. All of them count against pool.size: no more sessions (processes)
// exist at once, ever; a caller that finds the pool full evicts an idle
// session or waits up to timeouts.acquire.
//
// A circuit breaker per upstream opens after breaker.failures consecutive
// failures (connect errors, broken transports, missed deadlines; not tool
// errors or JSON-RPC errors, which prove the upstream alive). While open,
// calls fail at once with an *UnavailableError wrapping ErrCircuitOpen,
// which the executor shows the client as an isError result ("upstream
// unavailable ... next probe in 12s"): see UnavailableError for why. After
// breaker.openFor, breaker.halfOpenProbes calls probe; a success closes it.
//
// # Broken connections
//
// Over HTTP, a handshake (initialize) whose request got no response, or
// whose response broke off, is tried again on a transport of its own, at
// most three times within timeouts.connect; only the last failure counts
// for the breaker. Any such failure also drops the idle keep-alive
// connections of the upstream's shared transport: after a network
// partition they may be connections the upstream forgot, which answer the
// next request with a reset. A session the SDK has given up (the upstream
// forgot it, its stream could not be resumed, its process exited) is
// replaced before a call is sent to it. A tool call itself is never
// repeated: once sent, the upstream may have run it.
//
// # Notifications
//
// Progress and log notifications the upstream sends while a call runs are
// forwarded to the call's tools.Notifier in the order the upstream sent
// them, and all before CallTool returns. They are read from the byte stream
// in front of the go-sdk client (see tap.go for why the SDK's handlers are
// not enough). Progress is matched by a per-call token; log messages go to
// the oldest call in flight on that upstream session.
//
// Not federated (yet): resources and prompts (the catalog interfaces of
// package tools are answered inside the sessions processor and must not
// wait on the network; they need an executor path first), and
// server-to-client requests (sampling, elicitation, roots): the upstream
// client declares none of these capabilities.
package upstream
