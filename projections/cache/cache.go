package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/mcpstream/mcpstream/projections/redis"
)

// Session is a projected live session (see redis.Session).
type Session = redis.Session

// Scope is a result's cacheScope.
type Scope = redis.Scope

// Cache scopes.
const (
	ScopePublic  = redis.ScopePublic
	ScopePrivate = redis.ScopePrivate
)

// SessionCache is how a gateway asks whether a session is live without a
// trip through Kafka.
type SessionCache interface {
	// Session returns what the projection knows about session id. ok is
	// false when the cache cannot say: the session was never projected
	// (or not yet), is closed or idle-expired, or Redis is unavailable.
	// A miss means "ask the log", never "no such session".
	//
	// A hit can be stale by up to Config.SessionTTL plus the projection's
	// lag. Its immutable fields (Principal, ProtocolVersion, ClientInfo,
	// ClientCapabilities) can be acted on: a principal mismatch is a 404 the
	// log would give too. State, LogLevel and LastActivity are hints only.
	// The returned value shares memory with the cache: do not modify it.
	Session(ctx context.Context, id string) (s Session, ok bool)
}

// ResultCache holds results that 2026-07-28 servers mark cacheable with
// ttlMs and cacheScope.
type ResultCache interface {
	// Result returns the body stored under key for principal: a private
	// entry of that principal, or else a public entry. ok false means
	// compute it (through the log). The body shares memory with the cache:
	// do not modify it.
	Result(ctx context.Context, key, principal string) (body []byte, ok bool)
	// StoreResult stores body for ttl: for everyone (ScopePublic, or empty)
	// or only for principal (ScopePrivate). ttl <= 0 stores nothing.
	// Failures are counted, never returned: a result not cached is only
	// slower next time. It waits for Redis at most Config.Timeout, so call
	// it after the response is written.
	StoreResult(ctx context.Context, key, principal string, scope Scope, ttl time.Duration, body []byte)
}

// Backend is the Redis side; *redis.Store implements it.
type Backend interface {
	GetSession(ctx context.Context, id string) (redis.Session, error)
	GetResult(ctx context.Context, key, principal string) (redis.Result, error)
	PutResult(ctx context.Context, key, principal string, scope redis.Scope, ttl time.Duration, body []byte) error
}

var (
	_ Backend      = (*redis.Store)(nil)
	_ SessionCache = (*Cache)(nil)
	_ ResultCache  = (*Cache)(nil)
)

// Config tunes the cache. Zero values are the defaults named.
type Config struct {
	// SessionTTL is the longest a session stays in L1 (never past its
	// idle expiry): how long another gateway's DELETE may go unnoticed
	// here. Zero: 1 s. Negative: sessions skip L1.
	SessionTTL time.Duration
	// ResultTTL is the longest a result stays in L1 (never past its own
	// ttlMs). Zero: 10 s. Negative: results skip L1.
	ResultTTL time.Duration
	// MaxBytes bounds L1's size. Zero: 64 MiB.
	MaxBytes int64
	// MaxItems is the number of entries L1 is expected to hold; it sizes
	// ristretto's admission counters (10 per item). Zero: 100,000.
	MaxItems int64
	// Timeout bounds one Redis call; a timeout is a failure. Zero: 50 ms.
	Timeout time.Duration
	// FailureThreshold consecutive Redis failures open the breaker.
	// Zero: 3.
	FailureThreshold int
	// BreakerMin is how long the breaker stays open first; each failed
	// probe doubles it up to BreakerMax. Zero: 250 ms, and 5 s (or
	// BreakerMin if longer).
	BreakerMin, BreakerMax time.Duration
	// Metrics receives counters; nil: none.
	Metrics Metrics
	// Logger gets the breaker's transitions (warn when Redis is given up
	// on, info when it is back) and each Redis error at debug. Nil: silent.
	Logger *slog.Logger
}

// Cache is an L1 in front of a Backend. Safe for concurrent use.
type Cache struct {
	cfg     Config
	backend Backend
	l1      *ristretto.Cache[string, entry]
	br      *breaker
	metrics Metrics
	log     *slog.Logger
}

type entry struct {
	session *Session
	result  []byte
	// expires is checked on every hit: ristretto's own TTL is enforced
	// by a ticker and can serve an item up to a second late.
	expires time.Time
}

// New builds the cache. It does not own backend.
func New(backend Backend, cfg Config) (*Cache, error) {
	if backend == nil {
		return nil, errors.New("cache: backend is required")
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = time.Second
	}
	if cfg.ResultTTL == 0 {
		cfg.ResultTTL = 10 * time.Second
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 64 << 20
	}
	if cfg.MaxItems == 0 {
		cfg.MaxItems = 100_000
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 50 * time.Millisecond
	}
	if cfg.FailureThreshold == 0 {
		cfg.FailureThreshold = 3
	}
	if cfg.BreakerMin == 0 {
		cfg.BreakerMin = 250 * time.Millisecond
	}
	if cfg.BreakerMax == 0 {
		cfg.BreakerMax = max(5*time.Second, cfg.BreakerMin)
	}
	if cfg.MaxBytes < 0 || cfg.MaxItems < 0 || cfg.Timeout < 0 || cfg.FailureThreshold < 0 ||
		cfg.BreakerMin < 0 || cfg.BreakerMax < cfg.BreakerMin {
		return nil, fmt.Errorf("cache: invalid config %+v", cfg)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l1, err := ristretto.NewCache(&ristretto.Config[string, entry]{
		NumCounters: cfg.MaxItems * 10,
		MaxCost:     cfg.MaxBytes,
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("cache: building L1: %w", err)
	}
	c := &Cache{cfg: cfg, backend: backend, l1: l1, metrics: cfg.Metrics, log: cfg.Logger.With("component", "cache")}
	c.br = newBreaker(cfg.FailureThreshold, cfg.BreakerMin, cfg.BreakerMax, func(open bool) {
		c.metrics.Breaker(open)
		if open {
			c.log.Warn("redis unavailable: cache answers misses without asking it; requests go through the log")
		} else {
			c.log.Info("redis reachable again: cache back in use")
		}
	})
	return c, nil
}

// Close releases L1.
func (c *Cache) Close() { c.l1.Close() }

// BreakerOpen reports whether Redis is currently being skipped.
func (c *Cache) BreakerOpen() bool { return c.br.open() }

func sessionKey(id string) string { return "s" + id }

// resultKey keeps scopes apart in L1: a private entry is keyed by its
// principal (length-prefixed, so no principal/key pair can collide with
// another), a public one by the key alone.
func resultKey(key, principal string, scope Scope) string {
	if scope == ScopePrivate {
		return "p" + strconv.Itoa(len(principal)) + ":" + principal + key
	}
	return "r" + key
}

// Session implements SessionCache.
func (c *Cache) Session(ctx context.Context, id string) (Session, bool) {
	now := time.Now()
	if c.cfg.SessionTTL > 0 {
		if e, ok := c.l1.Get(sessionKey(id)); ok && now.Before(e.expires) {
			c.metrics.Lookup(KindSession, HitL1)
			return *e.session, true
		}
	}
	allowed, probe := c.br.allow(now)
	if !allowed {
		c.metrics.Lookup(KindSession, Skipped)
		return Session{}, false
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	s, err := c.backend.GetSession(rctx, id)
	cancel()
	if o := c.verdict(ctx, err, probe); o != HitRedis {
		c.metrics.Lookup(KindSession, o)
		return Session{}, false
	}
	if ttl := min(c.cfg.SessionTTL, s.ExpiresAt.Sub(now)); ttl > 0 {
		cost := int64(256 + len(id) + len(s.ClientInfo) + len(s.ClientCapabilities) + len(s.Principal))
		c.l1.SetWithTTL(sessionKey(id), entry{session: &s, expires: now.Add(ttl)}, cost, ttl)
	}
	c.metrics.Lookup(KindSession, HitRedis)
	return s, true
}

// ForgetSession drops a session from L1, for the gateway that just
// forwarded its DELETE (other gateways notice within SessionTTL).
func (c *Cache) ForgetSession(id string) { c.l1.Del(sessionKey(id)) }

// Result implements ResultCache.
func (c *Cache) Result(ctx context.Context, key, principal string) ([]byte, bool) {
	now := time.Now()
	if c.cfg.ResultTTL > 0 {
		if principal != "" {
			if e, ok := c.l1.Get(resultKey(key, principal, ScopePrivate)); ok && now.Before(e.expires) {
				c.metrics.Lookup(KindResult, HitL1)
				return e.result, true
			}
		}
		if e, ok := c.l1.Get(resultKey(key, "", ScopePublic)); ok && now.Before(e.expires) {
			c.metrics.Lookup(KindResult, HitL1)
			return e.result, true
		}
	}
	allowed, probe := c.br.allow(now)
	if !allowed {
		c.metrics.Lookup(KindResult, Skipped)
		return nil, false
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	r, err := c.backend.GetResult(rctx, key, principal)
	cancel()
	if o := c.verdict(ctx, err, probe); o != HitRedis {
		c.metrics.Lookup(KindResult, o)
		return nil, false
	}
	c.fillResult(key, principal, r.Scope, r.ExpiresAt, r.Body, now)
	c.metrics.Lookup(KindResult, HitRedis)
	return r.Body, true
}

func (c *Cache) fillResult(key, principal string, scope Scope, expires time.Time, body []byte, now time.Time) {
	if c.cfg.ResultTTL <= 0 {
		return
	}
	if ttl := min(c.cfg.ResultTTL, expires.Sub(now)); ttl > 0 {
		c.l1.SetWithTTL(resultKey(key, principal, scope), entry{result: body, expires: now.Add(ttl)},
			int64(64+len(key)+len(principal)+len(body)), ttl)
	}
}

// StoreResult implements ResultCache.
func (c *Cache) StoreResult(ctx context.Context, key, principal string, scope Scope, ttl time.Duration, body []byte) {
	if scope == "" {
		scope = ScopePublic
	}
	if (scope != ScopePublic && scope != ScopePrivate) || (scope == ScopePrivate && principal == "") {
		// Sharing what we cannot classify could leak it to another
		// principal: not cached at all.
		c.log.Debug("not caching result with invalid scope", "scope", scope, "has_principal", principal != "")
		c.metrics.Store(KindResult, Error)
		return
	}
	ttl = ttl.Truncate(time.Millisecond)
	if ttl <= 0 {
		return
	}
	now := time.Now()
	body = append([]byte(nil), body...)
	c.fillResult(key, principal, scope, now.Add(ttl), body, now)
	allowed, probe := c.br.allow(now)
	if !allowed {
		c.metrics.Store(KindResult, Skipped)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	err := c.backend.PutResult(rctx, key, principal, scope, ttl, body)
	cancel()
	o := c.verdict(ctx, err, probe)
	if o == HitRedis {
		o = Stored
	}
	c.metrics.Store(KindResult, o)
}

// verdict reports a Redis call to the breaker and names its outcome:
// HitRedis (it answered with a value), Miss (it answered: nothing there),
// Canceled (the caller gave up, no verdict on Redis) or Error.
func (c *Cache) verdict(ctx context.Context, err error, probe bool) Outcome {
	switch {
	case err == nil:
		c.br.success()
		return HitRedis
	case errors.Is(err, redis.ErrNotFound):
		c.br.success()
		return Miss
	case ctx.Err() != nil:
		c.br.release(probe)
		return Canceled
	default:
		c.br.failure(time.Now(), probe)
		c.log.Debug("redis call failed; answering a miss", "err", err)
		return Error
	}
}
