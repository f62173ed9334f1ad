package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrNotFound is returned by GetSession and GetResult when Redis holds no
// live entry. It is an answer, not a failure: callers that degrade on Redis
// errors must not count it as one.
var ErrNotFound = errors.New("not found in redis")

// Config says how to reach Redis and how keys are named.
type Config struct {
	// Addr is host:port of the Redis server. Required.
	Addr     string
	Username string
	Password string
	DB       int
	// KeyPrefix starts every key. Empty: "mcpstream" (use the topic prefix,
	// so deployments sharing a Redis stay apart).
	KeyPrefix string
	// DialTimeout bounds connecting. Zero: 1 s.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound one socket operation, so a hung
	// server (paused, partitioned) surfaces as an error instead of a stall.
	// Zero: 2 s each; callers that need less pass a context deadline.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// PoolSize is the connection pool size. Zero: go-redis' default (10 per CPU).
	PoolSize int
}

// Store reads and writes the projection's keys. It is safe for concurrent
// use. It never retries on its own: the projector retries whole batches and
// the cache degrades to a miss, and a hidden retry would only add latency to
// both.
type Store struct {
	c      goredis.UniversalClient
	prefix string
	// own says whether Close closes c.
	own bool
}

// NewStore validates cfg and builds the client; it connects lazily, so a
// Redis that is down at start does not fail the caller (use Ping to check).
func NewStore(cfg Config) (*Store, error) {
	if cfg.Addr == "" {
		return nil, errors.New("redis store: Addr is required")
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 2 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 2 * time.Second
	}
	c := goredis.NewClient(&goredis.Options{
		Addr:     cfg.Addr,
		Username: cfg.Username,
		Password: cfg.Password,
		DB:       cfg.DB,
		// RESP2: the replies this package reads are plain strings, arrays and
		// integers, and RESP2 needs no HELLO round trip per connection.
		Protocol:     2,
		MaxRetries:   -1,
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout,
		// go-redis retries a failed dial 5 times, 100 ms apart, by default:
		// half a second per command against a dead server.
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
		PoolSize:              cfg.PoolSize,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	return &Store{c: c, prefix: prefixOr(cfg.KeyPrefix), own: true}, nil
}

// NewStoreWithClient wraps a client the caller built and keeps owning (a
// Sentinel failover client, say). The projector's writes and markers assume
// one server: on Redis Cluster the per-partition markers live in other slots
// than the session keys, so a lost shard would go unnoticed.
func NewStoreWithClient(c goredis.UniversalClient, keyPrefix string) *Store {
	return &Store{c: c, prefix: prefixOr(keyPrefix)}
}

func prefixOr(p string) string {
	if p == "" {
		return "mcpstream"
	}
	return p
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("pinging redis: %w", err)
	}
	return nil
}

// Close releases the connections of a client built by NewStore.
func (s *Store) Close() error {
	if !s.own {
		return nil
	}
	return s.c.Close()
}

// Key layout. Braces are Redis Cluster hash tags: a session's hash and its
// gone marker share a slot (the Lua script touches both), and so do the
// public and private entries of one result key (read with one MGET).
func (s *Store) sessionKey(id string) string { return s.prefix + ":session:{" + id + "}" }
func (s *Store) goneKey(id string) string    { return s.prefix + ":session:{" + id + "}:gone" }
func (s *Store) markerKey(group string, partition int32) string {
	return fmt.Sprintf("%s:projector:%s:p%d", s.prefix, group, partition)
}
