package cache_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/mcpstream/mcpstream/projections/cache"
	"github.com/mcpstream/mcpstream/projections/redis"
	"github.com/mcpstream/mcpstream/schemas"
)

func TestMain(m *testing.M) {
	// Outage tests make go-redis print a line per failed dial.
	redis.RouteClientLogs(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

// recorder counts what the cache reports.
type recorder struct {
	mu      sync.Mutex
	lookups map[string]int
	stores  map[string]int
	breaker []bool
}

func (r *recorder) Lookup(k cache.Kind, o cache.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lookups == nil {
		r.lookups = map[string]int{}
	}
	r.lookups[string(k)+"/"+string(o)]++
}

func (r *recorder) Store(k cache.Kind, o cache.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stores == nil {
		r.stores = map[string]int{}
	}
	r.stores[string(k)+"/"+string(o)]++
}

func (r *recorder) Breaker(open bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.breaker = append(r.breaker, open)
}

func (r *recorder) lookup(k cache.Kind, o cache.Outcome) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups[string(k)+"/"+string(o)]
}

func (r *recorder) transitions() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.breaker)
}

// counting wraps a Backend and counts the calls that reach it.
type counting struct {
	cache.Backend
	calls atomic.Int64
}

func (c *counting) GetSession(ctx context.Context, id string) (redis.Session, error) {
	c.calls.Add(1)
	return c.Backend.GetSession(ctx, id)
}

func (c *counting) GetResult(ctx context.Context, key, principal string) (redis.Result, error) {
	c.calls.Add(1)
	return c.Backend.GetResult(ctx, key, principal)
}

func (c *counting) PutResult(ctx context.Context, key, principal string, scope redis.Scope, ttl time.Duration, body []byte) error {
	c.calls.Add(1)
	return c.Backend.PutResult(ctx, key, principal, scope, ttl, body)
}

func newStore(t *testing.T, addr string) *redis.Store {
	t.Helper()
	st, err := redis.NewStore(redis.Config{Addr: addr, KeyPrefix: "c", DialTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newCache(t *testing.T, b cache.Backend, cfg cache.Config) (*cache.Cache, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg.Metrics = rec
	if cfg.Timeout == 0 {
		// Generous: this box is shared and loaded, and only the tests about
		// timeouts want Redis calls to fail.
		cfg.Timeout = time.Second
	}
	c, err := cache.New(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, rec
}

func putSession(t *testing.T, st *redis.Store, id string, pos int64, expires time.Time) {
	t.Helper()
	s := &schemas.SessionState{SessionID: id, State: schemas.SessionActive, ProtocolVersion: "2025-11-25",
		ClientInfo: []byte(`{"name":"agent","version":"1"}`), Principal: "bearer:alice",
		CreatedAt: time.Now(), LastActivity: time.Now(), Requests: pos}
	out, err := st.ApplySessions(context.Background(), []redis.SessionWrite{{ID: id, Position: pos, State: s, ExpireAt: expires}})
	if err != nil || out[0] != redis.WritePut {
		t.Fatalf("seeding session %s: %v %v", id, out, err)
	}
}

func TestSessionL1HitThenExpiry(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	st := newStore(t, m.Addr())
	c, rec := newCache(t, st, cache.Config{SessionTTL: time.Second})
	putSession(t, st, "s1", 1, time.Now().Add(time.Hour))

	s, ok := c.Session(ctx, "s1")
	if !ok || s.Principal != "bearer:alice" || s.State != schemas.SessionActive || string(s.ClientInfo) != `{"name":"agent","version":"1"}` {
		t.Fatalf("first lookup: %+v %v", s, ok)
	}
	cache.WaitL1(c)
	// Gone from Redis: L1 still answers for up to SessionTTL...
	m.Del("c:session:{s1}")
	if _, ok := c.Session(ctx, "s1"); !ok {
		t.Fatal("L1 did not answer")
	}
	if got := rec.lookup(cache.KindSession, cache.HitL1); got != 1 {
		t.Errorf("L1 hits %d, want 1", got)
	}
	// ...and no longer after it.
	time.Sleep(1100 * time.Millisecond)
	if s, ok := c.Session(ctx, "s1"); ok {
		t.Fatalf("served past SessionTTL: %+v", s)
	}
	if _, ok := c.Session(ctx, "never"); ok {
		t.Fatal("unknown session hit")
	}
	if got := rec.lookup(cache.KindSession, cache.Miss); got != 2 {
		t.Errorf("misses %d, want 2", got)
	}
	if got := rec.lookup(cache.KindSession, cache.HitRedis); got != 1 {
		t.Errorf("redis hits %d, want 1", got)
	}
}

func TestSessionL1NeverOutlivesIdleExpiry(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	st := newStore(t, m.Addr())
	c, _ := newCache(t, st, cache.Config{SessionTTL: time.Hour})
	putSession(t, st, "s2", 1, time.Now().Add(600*time.Millisecond))
	if _, ok := c.Session(ctx, "s2"); !ok {
		t.Fatal("miss")
	}
	cache.WaitL1(c)
	m.FastForward(time.Second) // Redis expires the key
	time.Sleep(700 * time.Millisecond)
	if s, ok := c.Session(ctx, "s2"); ok {
		t.Fatalf("L1 served a session past its idle expiry: %+v", s)
	}
}

func TestResultScopes(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	st := newStore(t, m.Addr())
	c, _ := newCache(t, st, cache.Config{})
	other, _ := newCache(t, st, cache.Config{}) // another gateway: empty L1

	c.StoreResult(ctx, "tools/list", "bearer:alice", cache.ScopePublic, time.Minute, []byte("public list"))
	c.StoreResult(ctx, "whoami", "bearer:alice", cache.ScopePrivate, time.Minute, []byte("alice"))
	c.StoreResult(ctx, "both", "", "", time.Minute, []byte("shared"))
	c.StoreResult(ctx, "both", "bearer:bob", cache.ScopePrivate, time.Minute, []byte("bob's own"))
	cache.WaitL1(c)

	cases := []struct {
		key, principal, want string // want "": miss
	}{
		{"tools/list", "bearer:alice", "public list"},
		{"tools/list", "bearer:bob", "public list"},
		{"tools/list", "", "public list"},
		{"whoami", "bearer:alice", "alice"},
		{"whoami", "bearer:bob", ""},
		{"whoami", "", ""},
		{"both", "bearer:bob", "bob's own"},
		{"both", "bearer:alice", "shared"},
	}
	// Twice per cache: from Redis (or the writer's L1), then from L1.
	for _, cc := range []*cache.Cache{c, other} {
		for round := range 2 {
			for _, tc := range cases {
				body, ok := cc.Result(ctx, tc.key, tc.principal)
				if tc.want == "" {
					if ok {
						t.Errorf("round %d: %s for %q: got %q, want a miss", round, tc.key, tc.principal, body)
					}
					continue
				}
				if !ok || string(body) != tc.want {
					t.Errorf("round %d: %s for %q: got %q %v, want %q", round, tc.key, tc.principal, body, ok, tc.want)
				}
			}
			cache.WaitL1(cc)
		}
	}
	// Invalid scopes are not cached at all.
	c.StoreResult(ctx, "k1", "", cache.ScopePrivate, time.Minute, []byte("x"))
	c.StoreResult(ctx, "k2", "bearer:alice", "shared", time.Minute, []byte("x"))
	c.StoreResult(ctx, "k3", "bearer:alice", cache.ScopePublic, 0, []byte("x"))
	cache.WaitL1(c)
	for _, k := range []string{"k1", "k2", "k3"} {
		if b, ok := c.Result(ctx, k, "bearer:alice"); ok {
			t.Errorf("%s cached: %q", k, b)
		}
	}
}

func TestResultTTLExpiry(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	st := newStore(t, m.Addr())
	c, _ := newCache(t, st, cache.Config{ResultTTL: time.Hour})
	other, _ := newCache(t, st, cache.Config{ResultTTL: time.Hour})
	c.StoreResult(ctx, "short", "", cache.ScopePublic, 600*time.Millisecond, []byte("brief"))
	cache.WaitL1(c)
	if b, ok := c.Result(ctx, "short", "bearer:x"); !ok || string(b) != "brief" {
		t.Fatalf("L1: %q %v", b, ok)
	}
	if b, ok := other.Result(ctx, "short", "bearer:y"); !ok || string(b) != "brief" {
		t.Fatalf("redis: %q %v", b, ok)
	}
	cache.WaitL1(other)
	time.Sleep(700 * time.Millisecond)
	m.FastForward(time.Second)
	for i, cc := range []*cache.Cache{c, other} {
		if b, ok := cc.Result(ctx, "short", "bearer:x"); ok {
			t.Errorf("cache %d served an expired result: %q", i, b)
		}
	}
}

// Redis down: the first failures cost a refused dial each; once the breaker
// is open a lookup neither waits nor dials.
func TestBreakerOpenMissesFast(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	st := newStore(t, m.Addr())
	b := &counting{Backend: st}
	c, rec := newCache(t, b, cache.Config{FailureThreshold: 3, BreakerMin: 10 * time.Second, BreakerMax: 10 * time.Second})
	m.Close()

	for i := range 3 {
		if _, ok := c.Session(ctx, fmt.Sprint("s", i)); ok {
			t.Fatal("hit with redis down")
		}
	}
	if !c.BreakerOpen() {
		t.Fatal("breaker closed after 3 failures")
	}
	if got := rec.lookup(cache.KindSession, cache.Error); got != 3 {
		t.Errorf("errors counted %d, want 3", got)
	}
	calls := b.calls.Load()
	var worst time.Duration
	slow := 0
	for i := range 1000 {
		start := time.Now()
		_, ok := c.Session(ctx, fmt.Sprint("s", i))
		_, ok2 := c.Result(ctx, fmt.Sprint("r", i), "bearer:a")
		c.StoreResult(ctx, fmt.Sprint("w", i), "", cache.ScopePublic, time.Minute, []byte("x"))
		d := time.Since(start)
		worst = max(worst, d)
		if d >= 5*time.Millisecond {
			slow++
		}
		if ok || ok2 {
			t.Fatal("hit with redis down")
		}
	}
	// See TestLatencyReport on scheduling noise: 1% may stall.
	if slow > 10 {
		t.Errorf("%d of 1000 rounds with the breaker open took >= 5ms (slowest %v)", slow, worst)
	}
	if n := b.calls.Load() - calls; n != 0 {
		t.Errorf("%d calls reached redis while the breaker was open", n)
	}
	if got := rec.lookup(cache.KindSession, cache.Skipped); got != 1000 {
		t.Errorf("skipped lookups %d, want 1000", got)
	}
	t.Logf("breaker open: slowest of 1000 (Session + Result + StoreResult) took %v", worst)
}

// A Redis that accepts connections and never answers (paused, partitioned)
// costs Timeout per call until the breaker opens, then nothing.
func TestBreakerBlackHole(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	var conns sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for {
			cn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns.Add(1)
			go func() { // hold the connection, read nothing
				defer conns.Done()
				<-stop
				cn.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); close(stop); conns.Wait() })

	st := newStore(t, ln.Addr().String())
	c, rec := newCache(t, st, cache.Config{Timeout: 30 * time.Millisecond, FailureThreshold: 2, BreakerMin: 10 * time.Second, BreakerMax: 10 * time.Second})
	for i := range 2 {
		start := time.Now()
		if _, ok := c.Session(ctx, fmt.Sprint("s", i)); ok {
			t.Fatal("hit from a black hole")
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("call %d against a hung redis took %v, want about the 30ms timeout", i, d)
		}
	}
	if !c.BreakerOpen() {
		t.Fatal("breaker closed after 2 timeouts")
	}
	before := accepted.Load()
	start := time.Now()
	for i := range 1000 {
		c.Session(ctx, fmt.Sprint("s", i))
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("1000 lookups with the breaker open took %v", d)
	}
	if n := accepted.Load() - before; n != 0 {
		t.Errorf("%d new connections while the breaker was open", n)
	}
	if got := rec.lookup(cache.KindSession, cache.Error); got != 2 {
		t.Errorf("errors %d, want 2", got)
	}
}

func TestBreakerRecovers(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	st := newStore(t, m.Addr())
	c, rec := newCache(t, st, cache.Config{FailureThreshold: 1, BreakerMin: 40 * time.Millisecond, BreakerMax: 160 * time.Millisecond, SessionTTL: -1})
	putSession(t, st, "s1", 1, time.Now().Add(time.Hour))
	m.Close()
	if _, ok := c.Session(ctx, "s1"); ok || !c.BreakerOpen() {
		t.Fatalf("redis down: hit %v, breaker open %v", ok, c.BreakerOpen())
	}
	// Failed probes keep it open.
	time.Sleep(100 * time.Millisecond)
	c.Session(ctx, "s1")
	if !c.BreakerOpen() {
		t.Fatal("a failed probe closed the breaker")
	}
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	// miniredis keeps its data over a restart; the session is still there.
	deadline := time.Now().Add(3 * time.Second)
	for {
		if _, ok := c.Session(ctx, "s1"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cache did not use redis again after it came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c.BreakerOpen() {
		t.Error("breaker still open after a hit")
	}
	if got := rec.transitions(); !slices.Equal(got, []bool{true, false}) {
		t.Errorf("breaker transitions %v, want [open close]", got)
	}
}

func TestCanceledCallerDoesNotTripBreaker(t *testing.T) {
	m := miniredis.RunT(t)
	st := newStore(t, m.Addr())
	c, rec := newCache(t, st, cache.Config{FailureThreshold: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 5 {
		if _, ok := c.Session(ctx, "s"); ok {
			t.Fatal("hit")
		}
	}
	if c.BreakerOpen() {
		t.Error("callers giving up opened the breaker")
	}
	if got := rec.lookup(cache.KindSession, cache.Canceled); got != 5 {
		t.Errorf("canceled %d, want 5", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	m := miniredis.RunT(t)
	st := newStore(t, m.Addr())
	if _, err := cache.New(st, cache.Config{BreakerMin: time.Second, BreakerMax: time.Millisecond}); err == nil {
		t.Error("BreakerMax < BreakerMin accepted")
	}
	if _, err := cache.New(nil, cache.Config{}); err == nil {
		t.Error("nil backend accepted")
	}
}
