package redis

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Scope is a 2026-07-28 result's cacheScope.
type Scope string

// Cache scopes. Like HTTP Cache-Control public/private: a public result may
// be served to anyone, a private one only to the principal it was made for.
const (
	ScopePublic  Scope = "public"
	ScopePrivate Scope = "private"
)

// ErrBadScope is returned for a scope other than public or private, and
// for a private result without a principal.
var ErrBadScope = errors.New("invalid cache scope")

// Result is a cached result body.
type Result struct {
	// Body as stored (an id-less JSON-RPC body, typically). Shared with
	// caches: do not modify.
	Body      []byte
	Scope     Scope
	ExpiresAt time.Time
}

// resultKeys are the public and private keys of a cache key. The key is
// hashed: callers build it from method and params, which can be long and
// contain anything; the hash also makes the cluster hash tag well-formed.
func (s *Store) resultKeys(key, principal string) (pub, prv string) {
	h := sha256.Sum256([]byte(key))
	base := s.prefix + ":result:{" + hex.EncodeToString(h[:16]) + "}"
	return base + ":pub", base + ":prv:" + principal
}

// PutResult stores body under key for ttl. A public result is one entry for
// every principal; a private one is stored under principal and only ever
// returned to it. A ttl at or below zero stores nothing (2026-07-28: ttlMs 0
// means immediately stale). An empty scope means public, as in the spec.
func (s *Store) PutResult(ctx context.Context, key, principal string, scope Scope, ttl time.Duration, body []byte) error {
	if scope == "" {
		scope = ScopePublic
	}
	if scope != ScopePublic && scope != ScopePrivate {
		return fmt.Errorf("storing result with scope %q: %w", scope, ErrBadScope)
	}
	if scope == ScopePrivate && principal == "" {
		return fmt.Errorf("storing a private result without a principal: %w", ErrBadScope)
	}
	ttl = ttl.Truncate(time.Millisecond)
	if ttl <= 0 {
		return nil
	}
	pub, prv := s.resultKeys(key, principal)
	k := pub
	if scope == ScopePrivate {
		k = prv
	}
	// The expiry travels in the value so one MGET tells a reader (and its L1)
	// how long the entry may still be served.
	val := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint64(val, uint64(time.Now().Add(ttl).UnixMilli()))
	val = append(val, body...)
	if err := s.c.Set(ctx, k, val, ttl).Err(); err != nil {
		return fmt.Errorf("storing result: %w", err)
	}
	return nil
}

// GetResult returns the result stored under key for principal: its private
// entry if there is one, else the public one, else ErrNotFound. One round
// trip.
func (s *Store) GetResult(ctx context.Context, key, principal string) (Result, error) {
	pub, prv := s.resultKeys(key, principal)
	keys := []string{pub}
	if principal != "" {
		keys = []string{prv, pub}
	}
	vals, err := s.c.MGet(ctx, keys...).Result()
	if err != nil {
		return Result{}, fmt.Errorf("reading result: %w", err)
	}
	now := time.Now()
	for i, v := range vals {
		str, ok := v.(string)
		if !ok || len(str) < 8 {
			continue
		}
		exp := time.UnixMilli(int64(binary.BigEndian.Uint64([]byte(str[:8]))))
		if !exp.After(now) {
			continue
		}
		scope := ScopePublic
		if len(keys) == 2 && i == 0 {
			scope = ScopePrivate
		}
		return Result{Body: []byte(str[8:]), Scope: scope, ExpiresAt: exp}, nil
	}
	return Result{}, ErrNotFound
}
