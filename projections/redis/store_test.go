package redis

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/projections/redis/redistest"
	"github.com/mcpstream/mcpstream/schemas"
)

func newTestStore(t *testing.T) (*Store, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	st, err := NewStore(Config{Addr: srv.Addr(), KeyPrefix: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, srv
}

func active(id string, lastActivity time.Time, requests int64) *schemas.SessionState {
	return &schemas.SessionState{SessionID: id, State: schemas.SessionActive, ProtocolVersion: "2025-11-25",
		ClientInfo: []byte(`{"name":"c","version":"1"}`), ClientCapabilities: []byte(`{"roots":{}}`),
		Principal: "bearer:abc", CreatedAt: lastActivity.Add(-time.Minute), LastActivity: lastActivity,
		LastOffset: requests, Requests: requests, LogLevel: "info"}
}

func TestApplySessionsNeverMovesBackwards(t *testing.T) {
	ctx := context.Background()
	st, _ := newTestStore(t)
	now := time.Now().Truncate(time.Millisecond)
	exp := func(s *schemas.SessionState) time.Time { return s.LastActivity.Add(time.Hour) }
	v5, v3, v7 := active("s1", now, 5), active("s1", now.Add(-time.Second), 3), active("s1", now.Add(time.Second), 7)

	steps := []struct {
		name string
		w    SessionWrite
		want int
		pos  int64
		reqs int64
	}{
		{"first value", SessionWrite{ID: "s1", Position: 5, State: v5, ExpireAt: exp(v5)}, WritePut, 5, 5},
		{"older value is ignored", SessionWrite{ID: "s1", Position: 3, State: v3, ExpireAt: exp(v3)}, WriteStale, 5, 5},
		{"same position again is ignored", SessionWrite{ID: "s1", Position: 5, State: v3, ExpireAt: exp(v3)}, WriteStale, 5, 5},
		{"newer value replaces", SessionWrite{ID: "s1", Position: 7, State: v7, ExpireAt: exp(v7)}, WritePut, 7, 7},
	}
	for _, s := range steps {
		out, err := st.ApplySessions(ctx, []SessionWrite{s.w})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if out[0] != s.want {
			t.Errorf("%s: outcome %d, want %d", s.name, out[0], s.want)
		}
		got, err := st.GetSession(ctx, "s1")
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got.Position != s.pos || got.Requests != s.reqs {
			t.Errorf("%s: position/requests %d/%d, want %d/%d", s.name, got.Position, got.Requests, s.pos, s.reqs)
		}
	}
	got, _ := st.GetSession(ctx, "s1")
	want := Session{ID: "s1", Principal: "bearer:abc", ProtocolVersion: "2025-11-25", State: schemas.SessionActive,
		ClientInfo: []byte(`{"name":"c","version":"1"}`), ClientCapabilities: []byte(`{"roots":{}}`), LogLevel: "info",
		CreatedAt: v7.CreatedAt, LastActivity: v7.LastActivity, Requests: 7, ExpiresAt: exp(v7), Position: 7}
	if !sessionsEqual(got, want) {
		t.Errorf("session = %+v\nwant      %+v", got, want)
	}
	// The key's TTL is the idle expiry, exactly.
	ms, err := st.c.PExpireTime(ctx, st.sessionKey("s1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ms != time.Duration(exp(v7).UnixMilli())*time.Millisecond {
		t.Errorf("PEXPIRETIME = %v, want %v", ms, exp(v7).UnixMilli())
	}
}

func sessionsEqual(a, b Session) bool {
	return a.ID == b.ID && a.Principal == b.Principal && a.ProtocolVersion == b.ProtocolVersion && a.State == b.State &&
		bytes.Equal(a.ClientInfo, b.ClientInfo) && bytes.Equal(a.ClientCapabilities, b.ClientCapabilities) &&
		a.LogLevel == b.LogLevel && a.CreatedAt.Equal(b.CreatedAt) && a.LastActivity.Equal(b.LastActivity) &&
		a.Requests == b.Requests && a.ExpiresAt.Equal(b.ExpiresAt) && a.Position == b.Position
}

func TestClosedSessionCannotBeResurrected(t *testing.T) {
	ctx := context.Background()
	st, _ := newTestStore(t)
	now := time.Now()
	old := active("s2", now, 4)
	closed := *old
	closed.State = schemas.SessionClosed
	markerExp := now.Add(400 * time.Millisecond)
	if _, err := st.ApplySessions(ctx, []SessionWrite{{ID: "s2", Position: 4, State: old, ExpireAt: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	out, err := st.ApplySessions(ctx, []SessionWrite{{ID: "s2", Position: 9, State: &closed, ExpireAt: markerExp}})
	if err != nil || out[0] != WriteDeleted {
		t.Fatalf("closing: %v %v", out, err)
	}
	if _, err := st.GetSession(ctx, "s2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("closed session still there: %v", err)
	}
	// Replaying the older ACTIVE value must not bring it back.
	out, err = st.ApplySessions(ctx, []SessionWrite{{ID: "s2", Position: 4, State: old, ExpireAt: now.Add(time.Hour)}})
	if err != nil || out[0] != WriteStale {
		t.Fatalf("replaying older value: outcome %v, err %v; want stale", out, err)
	}
	if _, err := st.GetSession(ctx, "s2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("closed session resurrected by a replay: %v", err)
	}
	// A tombstone after CLOSED keeps it gone too.
	if out, err := st.ApplySessions(ctx, []SessionWrite{{ID: "s2", Position: 10, ExpireAt: markerExp}}); err != nil || out[0] != WriteDeleted {
		t.Fatalf("tombstone: %v %v", out, err)
	}
	// The marker goes when the idle window of the last value ends; by then
	// every older value is expired as well, and writing it stores nothing.
	time.Sleep(time.Until(markerExp) + 50*time.Millisecond)
	if n, _ := st.c.Exists(ctx, st.goneKey("s2")).Result(); n != 0 {
		t.Fatal("gone marker did not expire")
	}
	expired := active("s2", markerExp.Add(-time.Hour), 4)
	if _, err := st.ApplySessions(ctx, []SessionWrite{{ID: "s2", Position: 4, State: expired, ExpireAt: expired.LastActivity.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.c.Exists(ctx, st.sessionKey("s2")).Result(); n != 0 {
		t.Fatal("an expired value was stored")
	}
}

func TestResultsScopeAndTTL(t *testing.T) {
	ctx := context.Background()
	st, _ := newTestStore(t)
	if err := st.PutResult(ctx, "tools/list", "", ScopePublic, time.Minute, []byte(`{"result":{"tools":[]}}`)); err != nil {
		t.Fatal(err)
	}
	if err := st.PutResult(ctx, "whoami", "alice", ScopePrivate, time.Minute, []byte(`alice's`)); err != nil {
		t.Fatal(err)
	}
	if err := st.PutResult(ctx, "short", "", "", 150*time.Millisecond, []byte(`soon gone`)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		key, principal string
		body           string // empty: not found
		scope          Scope
	}{
		{"tools/list", "alice", `{"result":{"tools":[]}}`, ScopePublic},
		{"tools/list", "", `{"result":{"tools":[]}}`, ScopePublic},
		{"whoami", "alice", "alice's", ScopePrivate},
		{"whoami", "bob", "", ""},
		{"whoami", "", "", ""},
		{"short", "bob", "soon gone", ScopePublic},
		{"never stored", "alice", "", ""},
	}
	for _, c := range cases {
		r, err := st.GetResult(ctx, c.key, c.principal)
		if c.body == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s for %q: got %q, %v; want not found", c.key, c.principal, r.Body, err)
			}
			continue
		}
		if err != nil || string(r.Body) != c.body || r.Scope != c.scope {
			t.Errorf("%s for %q: %q %s %v; want %q %s", c.key, c.principal, r.Body, r.Scope, err, c.body, c.scope)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := st.GetResult(ctx, "short", "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired result still served: %v", err)
	}
	if err := st.PutResult(ctx, "zero", "", ScopePublic, 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetResult(ctx, "zero", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("ttl 0 was stored: %v", err)
	}
	if err := st.PutResult(ctx, "k", "", ScopePrivate, time.Minute, nil); !errors.Is(err, ErrBadScope) {
		t.Errorf("private without principal: %v", err)
	}
	if err := st.PutResult(ctx, "k", "a", "shared", time.Minute, nil); !errors.Is(err, ErrBadScope) {
		t.Errorf("unknown scope: %v", err)
	}
}

func TestStoreReloadsScriptAfterRestart(t *testing.T) {
	ctx := context.Background()
	st, srv := newTestStore(t)
	now := time.Now()
	w := SessionWrite{ID: "s3", Position: 1, State: active("s3", now, 1), ExpireAt: now.Add(time.Hour)}
	if _, err := st.ApplySessions(ctx, []SessionWrite{w}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if _, err := st.ApplySessions(ctx, []SessionWrite{w}); err == nil {
		t.Fatal("write to a dead redis succeeded")
	}
	srv.Restart()
	// The restarted server has no scripts; the store loads it again.
	if out, err := st.ApplySessions(ctx, []SessionWrite{w}); err != nil || out[0] != WritePut {
		t.Fatalf("after restart: %v %v", out, err)
	}
}

func TestForeignKeyIsOverwritten(t *testing.T) {
	ctx := context.Background()
	st, _ := newTestStore(t)
	// Something else wrote into the projection's keyspace.
	if err := st.c.Set(ctx, st.sessionKey("s4"), "junk", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := st.c.HSet(ctx, st.goneKey("s4"), "x", "y").Err(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	out, err := st.ApplySessions(ctx, []SessionWrite{{ID: "s4", Position: 2, State: active("s4", now, 2), ExpireAt: now.Add(time.Hour)}})
	if err != nil || out[0] != WritePut {
		t.Fatalf("write over foreign keys: %v %v", out, err)
	}
	if s, err := st.GetSession(ctx, "s4"); err != nil || s.Position != 2 {
		t.Fatalf("after overwrite: %+v %v", s, err)
	}
}
