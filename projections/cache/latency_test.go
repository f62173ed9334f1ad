package cache_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/projections/cache"
	"github.com/mcpstream/mcpstream/projections/redis"
	"github.com/mcpstream/mcpstream/projections/redis/redistest"
	"github.com/mcpstream/mcpstream/schemas"
)

func seedSessions(t testing.TB, st *redis.Store, n int) []string {
	t.Helper()
	ids := make([]string, n)
	writes := make([]redis.SessionWrite, n)
	now := time.Now()
	for i := range n {
		ids[i] = fmt.Sprintf("%032x", i)
		writes[i] = redis.SessionWrite{ID: ids[i], Position: 1, ExpireAt: now.Add(time.Hour), State: &schemas.SessionState{
			SessionID: ids[i], State: schemas.SessionActive, ProtocolVersion: "2025-11-25", Principal: "bearer:0123456789abcdef",
			ClientInfo: []byte(`{"name":"agent","version":"1.0.0"}`), ClientCapabilities: []byte(`{"elicitation":{},"roots":{}}`),
			CreatedAt: now, LastActivity: now, Requests: 3}}
	}
	if _, err := st.ApplySessions(context.Background(), writes); err != nil {
		t.Fatal(err)
	}
	return ids
}

type dist []time.Duration

func (d dist) String() string {
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("p50 %v p99 %v max %v (n=%d)", q(0.5), q(0.99), s[len(s)-1], len(s))
}

func (d dist) over(limit time.Duration) int {
	n := 0
	for _, x := range d {
		if x >= limit {
			n++
		}
	}
	return n
}

func (d dist) quantile(p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func measure(n int, f func(i int)) dist {
	d := make(dist, n)
	for i := range n {
		start := time.Now()
		f(i)
		d[i] = time.Since(start)
	}
	return d
}

// TestLatencyReport measures the three paths a gateway lookup can take,
// against a real redis-server, and checks the breaker-open bound.
func TestLatencyReport(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	st := newStore(t, srv.Addr())
	ids := seedSessions(t, st, 1000)
	l1, _ := newCache(t, st, cache.Config{})
	direct, _ := newCache(t, st, cache.Config{SessionTTL: -1, BreakerMin: 10 * time.Second})

	for _, id := range ids {
		if _, ok := l1.Session(ctx, id); !ok {
			t.Fatalf("session %s missing", id)
		}
	}
	cache.WaitL1(l1)
	hitL1 := measure(20000, func(i int) {
		if _, ok := l1.Session(ctx, ids[i%len(ids)]); !ok {
			t.Fatal("L1 miss")
		}
	})
	hitRedis := measure(5000, func(i int) {
		if _, ok := direct.Session(ctx, ids[i%len(ids)]); !ok {
			t.Fatal("redis miss")
		}
	})
	srv.Kill()
	for range 3 {
		direct.Session(ctx, ids[0])
	}
	if !direct.BreakerOpen() {
		t.Fatal("breaker did not open with redis down")
	}
	open := measure(20000, func(i int) {
		if _, ok := direct.Session(ctx, ids[i%len(ids)]); ok {
			t.Fatal("hit with redis down")
		}
	})
	t.Logf("L1 hit:           %v", hitL1)
	t.Logf("redis hit:        %v", hitRedis)
	t.Logf("breaker-open miss: %v", open)
	// The bound is on our work (an L1 probe and an atomic load). This box
	// is shared and has 2 cores (load 7 seen while other suites ran): a
	// lookup can still be descheduled for several ms, so 1% may exceed it. A breaker that dialled would cost a refused
	// connect (~50-100 µs) on every call, one that waited the 50 ms timeout;
	// TestBreakerOpenMissesFast and TestBreakerBlackHole count the dials.
	if slow := open.over(5 * time.Millisecond); slow > len(open)/100 {
		t.Errorf("%d of %d lookups with the breaker open took >= 5ms (%v)", slow, len(open), open)
	}
	if q := open.quantile(0.5); q >= 20*time.Microsecond {
		t.Errorf("breaker-open median %v: looks like redis is being called", q)
	}
	if q := hitL1.quantile(0.5); q >= 20*time.Microsecond {
		t.Errorf("L1 hit median %v, want < 20µs", q)
	}
	if q := hitRedis.quantile(0.5); q >= 5*time.Millisecond {
		t.Errorf("redis hit p50 %v, want < 5ms on localhost", q)
	}
}

func BenchmarkSession(b *testing.B) {
	ctx := context.Background()
	srv := redistest.Start(b)
	st, err := redis.NewStore(redis.Config{Addr: srv.Addr(), KeyPrefix: "c"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ids := seedSessions(b, st, 1000)
	mk := func(cfg cache.Config) *cache.Cache {
		c, err := cache.New(st, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		return c
	}
	b.Run("l1-hit", func(b *testing.B) {
		c := mk(cache.Config{SessionTTL: time.Hour})
		for _, id := range ids {
			c.Session(ctx, id)
		}
		cache.WaitL1(c)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			c.Session(ctx, ids[i%len(ids)])
		}
	})
	b.Run("redis-hit", func(b *testing.B) {
		c := mk(cache.Config{SessionTTL: -1})
		for i := 0; b.Loop(); i++ {
			c.Session(ctx, ids[i%len(ids)])
		}
	})
	b.Run("breaker-open", func(b *testing.B) {
		c := mk(cache.Config{SessionTTL: -1, FailureThreshold: 1, BreakerMin: time.Hour})
		srv.Kill()
		c.Session(ctx, ids[0])
		if !c.BreakerOpen() {
			b.Fatal("breaker closed")
		}
		for i := 0; b.Loop(); i++ {
			c.Session(ctx, ids[i%len(ids)])
		}
	})
}
