package cache

import (
	"context"
	"encoding/json"
)

// Lookup finds a cached result for a request: the gateway's view of the
// cache (gateway.ResultCache). Only results that said they may be cached
// (ttlMs, cacheScope) are ever there.
func (c *Cache) Lookup(ctx context.Context, protocolVersion, method string, params json.RawMessage, principal string) ([]byte, bool) {
	key, err := ResultKey(protocolVersion, method, params)
	if err != nil {
		return nil, false
	}
	return c.Result(ctx, key, principal)
}

// Offer stores a result the log produced if its body allows caching.
func (c *Cache) Offer(ctx context.Context, protocolVersion, method string, params json.RawMessage, principal string, body []byte) {
	scope, ttl, ok := Policy(body)
	if !ok {
		return
	}
	key, err := ResultKey(protocolVersion, method, params)
	if err != nil {
		return
	}
	c.StoreResult(ctx, key, principal, scope, ttl, body)
}
