// Package redis projects live sessions into Redis and stores cacheable MCP
// results there, for gateways to read through projections/cache.
//
// Two types: Store (the key layout, the idempotent session write, the result
// store) and Projector (a franz-go consumer of the compacted sessions table
// topic, `<prefix>-sessions-table`, that writes through a Store).
//
// Layout, with KeyPrefix "mcpstream":
//
//	mcpstream:session:{<id>}            hash: principal, protocol_version, state, client_info,
//	                                    client_capabilities, log_level, created_at, last_activity,
//	                                    requests, expires_at (unix ms), pos (table offset)
//	                                    TTL: expires at last_activity + IdleTTL
//	mcpstream:session:{<id>}:gone       offset of the CLOSED value or tombstone that removed
//	                                    the session; expires with the last idle window
//	mcpstream:result:{<h>}:pub          8-byte expiry (unix ms) + body; TTL ttlMs
//	mcpstream:result:{<h>}:prv:<principal>
//	mcpstream:projector:<group>:p<N>    "this Redis has partition N since offset 0"
//
// Every session write carries the offset of its table record and runs as
// one Lua script that does nothing when the key (or its gone marker) already
// holds that offset or a later one: replays, redeliveries and overlapping
// owners during a rebalance never move a key backwards. CLOSED sessions and
// tombstones delete the hash and leave the gone marker, so replaying the
// session's older values cannot resurrect it; the marker can expire when the
// idle window does, because after that every older value is itself expired.
//
// The projector commits Kafka offsets only after Redis acknowledged the
// writes. While Redis is down it holds its batch and retries with backoff;
// if Redis comes back empty (restarted without persistence) the per-partition
// markers are gone, and the projector rewinds those partitions to offset 0
// and rebuilds them: a compacted table is cheap to replay.
//
// go-redis logs through a process-wide logger; RouteClientLogs sends it to
// slog once.
//
//	store, err := redis.NewStore(redis.Config{Addr: "127.0.0.1:6379"})
//	proj, err := redis.NewProjector(schemas.MustLoad(), store, redis.ProjectorConfig{Streams: sc})
//	go proj.Run(ctx)
//	s, err := store.GetSession(ctx, sessionID) // ErrNotFound when not live
package redis
