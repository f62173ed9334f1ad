// Package projections turns the platform's topics into read models in
// PostgreSQL: who has which session, and the audit trail of every tool call.
// The topics stay the source of truth; every table here can be dropped and
// rebuilt from the log (ops/replay does that into fresh tables, then swaps
// them in).
//
// Sources and tables:
//
//	mcpstream-sessions-table (SessionState, compacted)  -> sessions
//	mcpstream.toolcalls (ToolJob)                        -> tool_calls (who, what, when, args hash)
//	mcpstream.tool-results (ToolResult)                  -> tool_calls (executor, duration, outcome)
//	(issue 3) tasks, (issue 4) upstream_health           -> schema only
//
// Exactly-once: a batch's rows and the consumer offsets it advances are
// written in one transaction (Kafka auto-commit is off; what the projector
// commits to Kafka is advisory, for `mcpstream lag`). Every row also carries
// the log position it came from, and every upsert is guarded by it, so a
// batch applied twice (a crash after commit but before the next poll, two
// instances overlapping in a rebalance, a replay) changes nothing:
//
//   - sessions: last write wins by offset (WHERE excluded.src_offset > t.src_offset);
//   - tool_calls: the job half and the result half are guarded separately and
//     the lowest offset wins: the first job is when the call was accepted, the
//     first result is the one the toolcalls processor kept and answered with.
//     Lowest-wins is order-independent, so a result read before its job (the
//     two topics are fetched independently) lands the same.
//
// Storage layouts, one schema (see schema.go): LayoutNative (PARTITION BY HASH
// on the shard key), LayoutCitus (create_distributed_table on the same key;
// small catalogues as reference tables), LayoutPlain; and Router, which
// spreads rows over N databases by consistent hashing of the same key. The
// projector creates and migrates its schema itself (schema_migrations).
//
// Start from Open (a Store for one DSN or a Router for several), then New and
// Run:
//
//	st, err := projections.Open(ctx, projections.StoreConfig{DSNs: dsns})
//	p, err := projections.New(projections.Deps{Store: st, Schemas: reg, Logger: log},
//		projections.Config{Streams: streamsCfg})
//	err = p.Run(ctx)
package projections
