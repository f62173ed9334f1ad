// Package cache is what a gateway reads sessions and cacheable results
// through: a small in-process L1 (ristretto) in front of the Redis
// projection (projections/redis), that never makes a request fail or wait
// for Redis.
//
// Start from New, which returns a *Cache implementing SessionCache and
// ResultCache. Every answer is a hint: a miss means "ask the log", never
// "does not exist". Redis errors, timeouts and an open breaker all become
// misses, counted through Metrics; the gateway then takes the slow path
// through Kafka, which stays the source of truth.
//
// The breaker: after FailureThreshold consecutive Redis failures the cache
// stops calling Redis for BreakerMin (doubling up to BreakerMax while
// probes keep failing); meanwhile a lookup costs an L1 probe and an atomic
// load, and Redis is not dialled. When the window ends one request probes;
// its success closes the breaker.
//
//	store, _ := redis.NewStore(redis.Config{Addr: "127.0.0.1:6379"})
//	c, _ := cache.New(store, cache.Config{Metrics: m, Logger: log})
//	defer c.Close()
//	if s, ok := c.Session(ctx, id); ok && s.Principal == principal { ... fast path ... }
//	key, _ := cache.ResultKey(version, method, params)
//	if body, ok := c.Result(ctx, key, principal); ok { ... answer from cache ... }
//	// after answering from the log:
//	if scope, ttl, ok := cache.Policy(body); ok { c.StoreResult(ctx, key, principal, scope, ttl, body) }
package cache
