package cache_test

import (
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/projections/cache"
)

func TestPolicy(t *testing.T) {
	cases := []struct {
		body  string
		scope cache.Scope
		ttl   time.Duration
		ok    bool
	}{
		{`{"result":{"tools":[],"ttlMs":60000,"cacheScope":"public"}}`, cache.ScopePublic, time.Minute, true},
		{`{"jsonrpc":"2.0","id":7,"result":{"ttlMs":1500,"cacheScope":"private"}}`, cache.ScopePrivate, 1500 * time.Millisecond, true},
		{`{"result":{"ttlMs":250}}`, cache.ScopePublic, 250 * time.Millisecond, true},                      // absent scope: public
		{`{"result":{"ttlMs":250,"cacheScope":"team"}}`, cache.ScopePrivate, 250 * time.Millisecond, true}, // unknown: private
		{`{"result":{"ttlMs":0,"cacheScope":"public"}}`, "", 0, false},                                     // immediately stale
		{`{"result":{"tools":[]}}`, "", 0, false},
		{`{"result":{"ttlMs":1e300}}`, cache.ScopePublic, 24 * time.Hour, true},
		{`{"error":{"code":-32602,"message":"x"},"result":{"ttlMs":5}}`, "", 0, false},
		{`{"error":{"code":-32602,"message":"x"}}`, "", 0, false},
		{`not json`, "", 0, false},
	}
	for _, c := range cases {
		scope, ttl, ok := cache.Policy([]byte(c.body))
		if scope != c.scope || ttl != c.ttl || ok != c.ok {
			t.Errorf("Policy(%s) = %q %v %v, want %q %v %v", c.body, scope, ttl, ok, c.scope, c.ttl, c.ok)
		}
	}
}

func TestResultKey(t *testing.T) {
	key := func(v, m, p string) string {
		t.Helper()
		var raw []byte
		if p != "" {
			raw = []byte(p)
		}
		k, err := cache.ResultKey(v, m, raw)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	same := [][2]string{
		{`{"cursor":"a","x":1}`, `{"x":1,"cursor":"a"}`},
		{`{"cursor":"a","_meta":{"progressToken":7}}`, `{"cursor":"a"}`},
		{`{ "cursor" : "a" }`, `{"cursor":"a"}`},
		{``, `null`},
	}
	for _, p := range same {
		if a, b := key("2026-07-28", "tools/list", p[0]), key("2026-07-28", "tools/list", p[1]); a != b {
			t.Errorf("%s and %s give different keys %q %q", p[0], p[1], a, b)
		}
	}
	distinct := []string{
		key("2026-07-28", "tools/list", `{"cursor":"a"}`),
		key("2026-07-28", "tools/list", `{"cursor":"b"}`),
		key("2025-11-25", "tools/list", `{"cursor":"a"}`),
		key("2026-07-28", "prompts/list", `{"cursor":"a"}`),
		key("2026-07-28", "tools/list", `{"cursor":"a","_meta2":1}`),
		key("2026-07-28", "tools/list", `{"n":1000}`),
		key("2026-07-28", "tools/list", `{"n":1e3}`),
	}
	for i := range distinct {
		for j := i + 1; j < len(distinct); j++ {
			if distinct[i] == distinct[j] {
				t.Errorf("keys %d and %d collide: %q", i, j, distinct[i])
			}
		}
	}
	if _, err := cache.ResultKey("v", "m", []byte(`{"bad"`)); err == nil {
		t.Error("invalid params accepted")
	}
}
