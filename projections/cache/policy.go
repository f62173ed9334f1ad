package cache

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Policy reads the caching hints of a 2026-07-28 result: ttlMs and
// cacheScope in the result object of a response body (id-less, as the
// platform stores them, or complete). ok is false for errors, for results
// without a positive ttlMs (0 or absent means immediately stale), and for
// bodies that are not JSON. An absent cacheScope is public, as the spec
// says; a value it does not define is treated as private, because sharing
// a result across principals is the one mistake a cache must not make.
func Policy(body []byte) (scope Scope, ttl time.Duration, ok bool) {
	var r struct {
		Result *struct {
			TTLMs      *float64 `json:"ttlMs"`
			CacheScope *string  `json:"cacheScope"`
		} `json:"result"`
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &r) != nil || r.Result == nil || r.Error != nil {
		return "", 0, false
	}
	if r.Result.TTLMs == nil || *r.Result.TTLMs < 1 {
		return "", 0, false
	}
	// Beyond a day is surely a bug somewhere; capping keeps a typo from
	// pinning an entry for years (and a huge float from overflowing).
	ttl = 24 * time.Hour
	if ms := *r.Result.TTLMs; ms < float64(ttl/time.Millisecond) {
		ttl = time.Duration(ms) * time.Millisecond
	}
	switch {
	case r.Result.CacheScope == nil || *r.Result.CacheScope == string(ScopePublic):
		scope = ScopePublic
	default:
		scope = ScopePrivate
	}
	return scope, ttl, true
}

// ResultKey names a request's cacheable result: the protocol revision, the
// method and its params in canonical JSON (object keys sorted), without
// params._meta. _meta carries per-call plumbing (progress tokens, log
// level, idempotency keys, the client's capabilities) that would make every
// key unique; a server whose result depends on the caller says so with
// cacheScope "private", which keys it by principal as well.
func ResultKey(protocolVersion, method string, params json.RawMessage) (string, error) {
	canon := []byte("null")
	if len(params) > 0 {
		d := json.NewDecoder(bytes.NewReader(params))
		d.UseNumber() // keep numbers as written: 1e3 and 1000 stay distinct
		var v any
		if err := d.Decode(&v); err != nil {
			return "", fmt.Errorf("result key: params: %w", err)
		}
		if m, ok := v.(map[string]any); ok {
			delete(m, "_meta")
		}
		b, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("result key: params: %w", err)
		}
		canon = b
	}
	return protocolVersion + "\x00" + method + "\x00" + string(canon), nil
}
