package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/projections/redis/redistest"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

const testPartitions = 6

// harness is a kfake broker with the platform's topics, a producer that
// partitions like the sessions processor, and the expected final value of
// every session it produced.
type harness struct {
	t     testing.TB
	sc    streams.Config
	reg   *schemas.Registry
	prod  *kgo.Client
	adm   *kadm.Client
	topic string

	mu   sync.Mutex
	last map[string]produced
}

type produced struct {
	state     *schemas.SessionState // nil: tombstone
	offset    int64
	partition int32
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	b, err := streams.NewBroker(streams.BrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: the broker closes after every client.
	t.Cleanup(b.Close)
	sc := streams.Config{Brokers: b.Addrs(), Partitions: testPartitions, Topics: streams.Topics{Prefix: "rp"}}.WithDefaults()
	cl, err := streams.NewClient(sc, "test-producer", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := streams.EnsureTopics(ctx, adm, sc.Topics, sc.Partitions, 1); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, sc: sc, reg: schemas.MustLoad(), prod: cl, adm: adm,
		topic: streams.Table(sc.Topics.SessionsGroup()), last: map[string]produced{}}
}

// rec is one table record: a state, a tombstone (nil state), or raw bytes.
type rec struct {
	id  string
	st  *schemas.SessionState
	raw []byte
}

func (h *harness) produce(recs ...rec) {
	h.t.Helper()
	krecs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		var val []byte
		switch {
		case r.raw != nil:
			val = r.raw
		case r.st != nil:
			b, err := h.reg.EncodeSession(r.st)
			if err != nil {
				h.t.Fatal(err)
			}
			val = b
		}
		krecs[i] = &kgo.Record{Topic: h.topic, Key: []byte(r.id), Value: val}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res := h.prod.ProduceSync(ctx, krecs...)
	if err := res.FirstErr(); err != nil {
		h.t.Fatalf("producing: %v", err)
	}
	// ProduceSync lists results in completion order; the records
	// themselves carry their partition and offset.
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, r := range krecs {
		if recs[i].raw != nil {
			continue // undecodable: the projection keeps the previous value
		}
		if want := streams.PartitionFor(recs[i].id, testPartitions); r.Partition != want {
			h.t.Fatalf("key %s went to partition %d, goka expects %d", recs[i].id, r.Partition, want)
		}
		h.last[recs[i].id] = produced{state: recs[i].st, offset: r.Offset, partition: r.Partition}
	}
}

// newSession returns an INITIALIZING session; the id is drawn until its
// partition passes keep (nil keeps any).
func newSession(i int, t0 time.Time, keep func(int32) bool) *schemas.SessionState {
	id := streams.NewID()
	for keep != nil && !keep(streams.PartitionFor(id, testPartitions)) {
		id = streams.NewID()
	}
	return &schemas.SessionState{SessionID: id, State: schemas.SessionInitializing, ProtocolVersion: "2025-11-25",
		ClientInfo: fmt.Appendf(nil, `{"name":"agent-%d","version":"1.%d"}`, i, i%3), ClientCapabilities: []byte(`{"elicitation":{}}`),
		Principal: fmt.Sprintf("bearer:%016x", i%7), CreatedAt: t0, LastActivity: t0, LastOffset: int64(i), Requests: 1}
}

// next is the session's following table value.
func next(s *schemas.SessionState, state schemas.SessionLifecycle, dt time.Duration) *schemas.SessionState {
	c := *s
	c.State = state
	c.LastActivity = s.LastActivity.Add(dt)
	c.LastOffset += 3
	c.Requests++
	return &c
}

type counting struct {
	batches, records, writes, stale, failed, skipped atomic.Int64
	mu                                               sync.Mutex
	rebuilt                                          map[int32]int
}

func (c *counting) BatchApplied(records, writes, stale int, _ time.Duration) {
	c.batches.Add(1)
	c.records.Add(int64(records))
	c.writes.Add(int64(writes))
	c.stale.Add(int64(stale))
}
func (c *counting) RedisFailed()   { c.failed.Add(1) }
func (c *counting) RedisUp(bool)   {}
func (c *counting) RecordSkipped() { c.skipped.Add(1) }
func (c *counting) PartitionRebuilt(p int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rebuilt == nil {
		c.rebuilt = map[int32]int{}
	}
	c.rebuilt[p]++
}
func (c *counting) rebuiltPartitions() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.rebuilt))
}

const testIdle = time.Hour

// startProjector runs a projector until the test ends (or stop is called).
func (h *harness) startProjector(st *Store, group string, m *counting, opTimeout time.Duration, maxBatch ...int) (stop func()) {
	h.t.Helper()
	cfg := ProjectorConfig{Streams: h.sc, ClientID: "proj-" + group, Group: group,
		IdleTTL: testIdle, Metrics: m, OpTimeout: opTimeout, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	if len(maxBatch) > 0 {
		cfg.MaxBatch = maxBatch[0]
	}
	p, err := NewProjector(h.reg, st, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	if want := "rp-redis-projector"; group == "" && p.Group() != want {
		h.t.Errorf("default group %q, want %q", p.Group(), want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					h.t.Errorf("projector %s: %v", group, err)
				}
			case <-time.After(20 * time.Second):
				h.t.Errorf("projector %s did not stop", group)
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// lag returns the records group has yet to commit, over all partitions.
func (h *harness) lag(group string) (int64, map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := h.adm.ListEndOffsets(ctx, h.topic)
	if err != nil {
		return 0, nil, err
	}
	committed, err := h.adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, nil, err
	}
	var total int64
	pos := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(h.topic, o.Partition)
		at := int64(0)
		if ok && c.Err == nil && c.At >= 0 {
			at = c.At
		}
		pos[o.Partition] = at
		total += o.Offset - at
	})
	return total, pos, nil
}

// waitFor polls cond until it returns nil, for at most limit.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %v: %v", what, limit, err)
}

func (h *harness) caughtUp(group string) func() error {
	return func() error {
		n, _, err := h.lag(group)
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("group %s is %d records behind", group, n)
		}
		return nil
	}
}

// matches compares every produced session with Redis: live ones with their
// last value and offset, closed, deleted and idle-expired ones absent, and
// nothing else there.
func (h *harness) matches(st *Store) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.mu.Lock()
		last := maps.Clone(h.last)
		h.mu.Unlock()
		live := map[string]bool{}
		for id, p := range last {
			got, err := st.GetSession(ctx, id)
			wantLive := p.state != nil && p.state.State != schemas.SessionClosed && p.state.LastActivity.Add(testIdle).After(time.Now())
			if !wantLive {
				if !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("session %s should be gone, got %+v, %v", id, got, err)
				}
				continue
			}
			live[id] = true
			if err != nil {
				return fmt.Errorf("session %s (offset %d): %w", id, p.offset, err)
			}
			s := p.state
			want := Session{ID: id, Principal: s.Principal, ProtocolVersion: s.ProtocolVersion, State: s.State,
				ClientInfo: s.ClientInfo, ClientCapabilities: s.ClientCapabilities, LogLevel: s.LogLevel,
				CreatedAt: s.CreatedAt, LastActivity: s.LastActivity, Requests: s.Requests,
				ExpiresAt: s.LastActivity.Add(testIdle), Position: p.offset}
			if !sessionsEqual(got, want) {
				return fmt.Errorf("session %s:\n got %+v\nwant %+v", id, got, want)
			}
		}
		ids, err := st.SessionIDs(ctx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !live[id] {
				return fmt.Errorf("unexpected session key %s", id)
			}
		}
		if len(ids) != len(live) {
			return fmt.Errorf("%d session keys, want %d", len(ids), len(live))
		}
		return nil
	}
}

// dump renders every session and gone key with its value and absolute
// expiry, to compare Redis before and after a replay.
func dump(t *testing.T, c *goredis.Client, prefix string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := c.Scan(ctx, 0, prefix+":session:*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		exp, err := c.PExpireTime(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var val string
		if strings.HasSuffix(k, ":gone") {
			val, err = c.Get(ctx, k).Result()
		} else {
			var m map[string]string
			m, err = c.HGetAll(ctx, k).Result()
			for _, f := range slices.Sorted(maps.Keys(m)) {
				val += f + "=" + m[f] + ";"
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		out[k] = val + " expires " + strconv.FormatInt(int64(exp/time.Millisecond), 10)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestProjectorProjectsSessions(t *testing.T) {
	h := newHarness(t)
	srv := redistest.Start(t)
	st, err := NewStore(Config{Addr: srv.Addr(), KeyPrefix: "rp"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)

	var ss []*schemas.SessionState
	var recs []rec
	for i := range 40 {
		s := newSession(i, t0, nil)
		ss = append(ss, s)
		recs = append(recs, rec{id: s.SessionID, st: s})
	}
	for i, s := range ss {
		a := next(s, schemas.SessionActive, time.Duration(i)*time.Second)
		ss[i] = a
		recs = append(recs, rec{id: a.SessionID, st: a})
	}
	for i := 0; i < 7; i++ { // closed by DELETE
		c := next(ss[i], schemas.SessionClosed, time.Second)
		recs = append(recs, rec{id: c.SessionID, st: c})
	}
	for i := 5; i < 8; i++ { // then (or directly) deleted from the table
		recs = append(recs, rec{id: ss[i].SessionID})
	}
	// Idle for longer than the idle TTL: expired, never stored.
	old := next(ss[8], schemas.SessionActive, -3*time.Hour)
	recs = append(recs, rec{id: old.SessionID, st: old})
	// An undecodable value is skipped; the previous value stays.
	recs = append(recs, rec{id: ss[9].SessionID, raw: []byte("not avro")})
	h.produce(recs...)

	m := &counting{}
	h.startProjector(st, "", m, 0)
	waitFor(t, 30*time.Second, "projector caught up", h.caughtUp("rp-redis-projector"))
	waitFor(t, 5*time.Second, "redis matches the table", h.matches(st))
	if n := m.skipped.Load(); n != 1 {
		t.Errorf("skipped records = %d, want 1", n)
	}
	// TTL: the idle window from the last activity.
	c := srv.Client()
	ttl, err := c.PTTL(context.Background(), st.sessionKey(ss[20].SessionID)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Until(ss[20].LastActivity.Add(testIdle)); ttl < want-2*time.Second || ttl > want+time.Second {
		t.Errorf("TTL %v, want about %v", ttl, want)
	}

	// Live updates: a session closes, another changes its log level.
	closed := next(ss[30], schemas.SessionClosed, time.Second)
	lvl := next(ss[31], schemas.SessionActive, 2*time.Second)
	lvl.LogLevel = "debug"
	h.produce(rec{id: closed.SessionID, st: closed}, rec{id: lvl.SessionID, st: lvl})
	waitFor(t, 10*time.Second, "closed session gone, updated one updated", func() error {
		if _, err := st.GetSession(context.Background(), closed.SessionID); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("closed session still there (%v)", err)
		}
		s, err := st.GetSession(context.Background(), lvl.SessionID)
		if err != nil || s.LogLevel != "debug" {
			return fmt.Errorf("log level %q, %v", s.LogLevel, err)
		}
		return nil
	})
	waitFor(t, 10*time.Second, "redis matches the table", h.matches(st))
}

func TestProjectorReplayLeavesIdenticalKeys(t *testing.T) {
	h := newHarness(t)
	srv := redistest.Start(t)
	st, err := NewStore(Config{Addr: srv.Addr(), KeyPrefix: "rp"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := srv.Client()
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)

	// Several values per session: a replay that ignored positions would
	// leave keys at older values, or resurrect closed ones.
	var recs []rec
	for i := range 60 {
		s := newSession(i, t0, nil)
		recs = append(recs, rec{id: s.SessionID, st: s})
		for v := range 4 {
			s = next(s, schemas.SessionActive, time.Duration(v+1)*time.Second)
			recs = append(recs, rec{id: s.SessionID, st: s})
		}
		switch i % 6 {
		case 0:
			s = next(s, schemas.SessionClosed, time.Second)
			recs = append(recs, rec{id: s.SessionID, st: s})
		case 1:
			recs = append(recs, rec{id: s.SessionID})
		}
	}
	// Interleave sessions, as a live log does.
	slices.SortStableFunc(recs, func(a, b rec) int { return strings.Compare(a.id[:1], b.id[:1]) })
	h.produce(recs...)

	ma := &counting{}
	stopA := h.startProjector(st, "live", ma, 0)
	waitFor(t, 30*time.Second, "live projector caught up", h.caughtUp("live"))
	waitFor(t, 5*time.Second, "redis matches the table", h.matches(st))
	stopA()
	before := dump(t, c, "rp")
	if len(before) < 50 {
		t.Fatalf("only %d keys projected", len(before))
	}

	// Replay the whole table into the same Redis, in small batches so a
	// key's history spans several: nothing may change, not even for a
	// moment (the watcher samples positions meanwhile).
	ids := make([]string, 0, len(h.last))
	for id := range h.last {
		ids = append(ids, id)
	}
	w := watch(c, st, ids)
	mb := &counting{}
	stopB := h.startProjector(st, "replay", mb, 0, 5)
	waitFor(t, 30*time.Second, "replay caught up", h.caughtUp("replay"))
	stopB()
	w.finish(t, 1, 5)
	after := dump(t, c, "rp")
	if !maps.Equal(before, after) {
		for k, v := range before {
			if after[k] != v {
				t.Errorf("key %s changed by the replay:\n before %s\n after  %s", k, v, after[k])
			}
		}
		for k := range after {
			if _, ok := before[k]; !ok {
				t.Errorf("key %s appeared in the replay", k)
			}
		}
	}
	if w, s := mb.writes.Load(), mb.stale.Load(); w == 0 || s != w {
		t.Errorf("replay wrote %d, of which %d stale; want all stale", w, s)
	}

	// Rebuild into an empty Redis: the same sessions, with the same expiry.
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	h.startProjector(st, "rebuild", &counting{}, 0)
	waitFor(t, 30*time.Second, "rebuild caught up", h.caughtUp("rebuild"))
	waitFor(t, 5*time.Second, "rebuild matches the table", h.matches(st))
	rebuilt := dump(t, c, "rp")
	for k, v := range before {
		if strings.HasSuffix(k, ":gone") {
			// Tombstone markers expire relative to when they were written.
			if _, ok := rebuilt[k]; !ok {
				t.Errorf("gone marker %s missing after rebuild", k)
			}
			continue
		}
		if rebuilt[k] != v {
			t.Errorf("session %s differs after rebuild:\n live    %s\n rebuilt %s", k, v, rebuilt[k])
		}
	}
	if len(rebuilt) != len(before) {
		t.Errorf("%d keys after rebuild, %d live", len(rebuilt), len(before))
	}
}

// watcher samples every session's position and reports any that moved
// backwards or came back after being deleted, within one Redis server's
// lifetime (a server restarted without persistence starts from nothing).
type watcher struct {
	mu         sync.Mutex
	samples    int
	runs       map[string]bool
	violations []string
	stop       chan struct{}
	done       chan struct{}
}

func watch(c *goredis.Client, st *Store, ids []string) *watcher {
	w := &watcher{runs: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	type seen struct {
		max     int64
		present bool
		deleted bool
	}
	state := map[string]map[string]*seen{} // run id -> session -> seen
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			pipe := c.Pipeline()
			info := pipe.Info(ctx, "server")
			cmds := make([]*goredis.StringCmd, len(ids))
			for i, id := range ids {
				cmds[i] = pipe.HGet(ctx, st.sessionKey(id), "pos")
			}
			_, err := pipe.Exec(ctx)
			cancel()
			if err != nil && err != goredis.Nil {
				continue // Redis down or paused
			}
			run := ""
			for _, line := range strings.Split(info.Val(), "\n") {
				if v, ok := strings.CutPrefix(line, "run_id:"); ok {
					run = strings.TrimSpace(v)
				}
			}
			w.mu.Lock()
			w.samples++
			w.runs[run] = true
			if state[run] == nil {
				state[run] = map[string]*seen{}
			}
			for i, id := range ids {
				s := state[run][id]
				if s == nil {
					s = &seen{max: -1}
					state[run][id] = s
				}
				v, err := cmds[i].Result()
				if err == goredis.Nil {
					if s.present {
						s.present, s.deleted = false, true
					}
					continue
				}
				pos, _ := strconv.ParseInt(v, 10, 64)
				if s.deleted {
					w.violations = append(w.violations, fmt.Sprintf("session %s came back at position %d after being deleted", id, pos))
				}
				if pos < s.max {
					w.violations = append(w.violations, fmt.Sprintf("session %s moved back from position %d to %d", id, s.max, pos))
				}
				s.max, s.present, s.deleted = max(s.max, pos), true, false
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *watcher) finish(t *testing.T, runs, minSamples int) {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // a few samples of the final state
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range w.violations[:min(len(w.violations), 20)] {
		t.Error(v)
	}
	if w.samples < minSamples || len(w.runs) != runs {
		t.Errorf("%d samples of positions taken across %d redis lifetimes, want >= %d across %d", w.samples, len(w.runs), minSamples, runs)
	}
	t.Logf("positions sampled %d times across %d redis server lifetimes; %d violations", w.samples, len(w.runs), len(w.violations))
}

// outage runs the Redis outage scenario. kill: the server dies and comes
// back empty (no persistence), so the projector must notice and rebuild
// every partition. Otherwise the server is paused (SIGSTOP: requests hang,
// data kept) and the projector must resume from the position it held.
func outage(t *testing.T, kill bool) {
	h := newHarness(t)
	srv := redistest.Start(t)
	st, err := NewStore(Config{Addr: srv.Addr(), KeyPrefix: "rp"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)

	// Phase 1, before the outage: 90 sessions, initialized and active.
	var ss []*schemas.SessionState
	var recs []rec
	for i := range 90 {
		s := newSession(i, t0, nil)
		a := next(s, schemas.SessionActive, time.Second)
		ss = append(ss, a)
		recs = append(recs, rec{id: s.SessionID, st: s}, rec{id: a.SessionID, st: a})
	}
	// Sessions created during the outage, only in partitions 0-2: partitions
	// 3-5 then get no record while Redis is away, and the projector has to
	// notice their loss without a write to tell it.
	var born []*schemas.SessionState
	for i := range 24 {
		born = append(born, newSession(100+i, t0.Add(30*time.Second), func(p int32) bool { return p < 3 }))
	}
	h.produce(recs...)
	m := &counting{}
	h.startProjector(st, "", m, 300*time.Millisecond)
	group := "rp-redis-projector"
	waitFor(t, 30*time.Second, "projector caught up before the outage", h.caughtUp(group))
	waitFor(t, 5*time.Second, "redis matches before the outage", h.matches(st))

	ids := make([]string, 0, len(ss)+len(born))
	for _, s := range ss {
		ids = append(ids, s.SessionID)
	}
	for _, s := range born {
		ids = append(ids, s.SessionID)
	}
	w := watch(srv.Client(), st, ids)
	time.Sleep(50 * time.Millisecond)

	if kill {
		srv.Kill()
	} else {
		srv.Pause()
	}
	// Phase 2, during the outage, in chunks: updates to the sessions of
	// partitions 0-2, some closed and deleted, and new sessions.
	var chunks [][]rec
	for round := range 3 {
		var chunk []rec
		for i, s := range ss {
			if streams.PartitionFor(s.SessionID, testPartitions) >= 3 || s.State == schemas.SessionClosed {
				continue
			}
			n := next(s, schemas.SessionActive, time.Duration(round+1)*time.Second)
			if round == 2 && i%4 == 0 {
				n = next(s, schemas.SessionClosed, time.Second)
			}
			ss[i] = n
			chunk = append(chunk, rec{id: n.SessionID, st: n})
			if round == 2 && i%8 == 0 {
				chunk = append(chunk, rec{id: n.SessionID})
			}
		}
		for _, b := range born[round*8 : round*8+8] {
			chunk = append(chunk, rec{id: b.SessionID, st: b}, rec{id: b.SessionID, st: next(b, schemas.SessionActive, time.Second)})
		}
		chunks = append(chunks, chunk)
	}
	h.produce(chunks[0]...)
	waitFor(t, 10*time.Second, "projector noticed the outage", func() error {
		if m.failed.Load() < 2 {
			return errors.New("no failed redis write yet")
		}
		return nil
	})
	_, held, err := h.lag(group)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks[1:] {
		time.Sleep(200 * time.Millisecond)
		h.produce(c...)
	}
	// The born sessions' ACTIVE values, for the expectations.
	for _, b := range born {
		h.mu.Lock()
		p := h.last[b.SessionID]
		h.mu.Unlock()
		if p.state == nil || p.state.State != schemas.SessionActive {
			t.Fatalf("born session %s not active: %+v", b.SessionID, p)
		}
	}
	time.Sleep(300 * time.Millisecond)
	lag, stillHeld, err := h.lag(group)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(held, stillHeld) {
		t.Errorf("committed offsets moved while redis was down: %v -> %v", held, stillHeld)
	}
	if lag == 0 {
		t.Error("nothing pending after producing during the outage")
	}
	failedDuring := m.failed.Load()
	outageAt := time.Now()
	if kill {
		srv.Restart()
	} else {
		srv.Resume()
	}
	waitFor(t, 30*time.Second, "projector caught up after the outage", h.caughtUp(group))
	waitFor(t, 10*time.Second, "redis matches after the outage", h.matches(st))
	t.Logf("caught up %v after redis returned; %d failed attempts during the outage; %d records pending at return",
		time.Since(outageAt).Round(time.Millisecond), failedDuring, lag)
	if kill {
		w.finish(t, 2, 10)
	} else {
		w.finish(t, 1, 10)
	}

	rebuilt := m.rebuiltPartitions()
	if kill {
		if len(rebuilt) != testPartitions {
			t.Errorf("partitions rebuilt after redis came back empty: %v, want all %d", rebuilt, testPartitions)
		}
	} else if len(rebuilt) != 0 {
		t.Errorf("partitions rebuilt although redis kept its data: %v", rebuilt)
	}
}

func TestProjectorRedisOutageKill(t *testing.T)  { outage(t, true) }
func TestProjectorRedisOutagePause(t *testing.T) { outage(t, false) }

// BenchmarkProjectorReplay measures a replay of the sessions table into an
// empty Redis: 10,000 sessions with 5 values each per iteration (run it with
// -benchtime 1x; the broker and redis-server are in this process and on
// this box). It reports table records and Redis writes per second.
func BenchmarkProjectorReplay(b *testing.B) {
	h := newHarness(b)
	srv := redistest.Start(b)
	st, err := NewStore(Config{Addr: srv.Addr(), KeyPrefix: "rp"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	// Version after version, so a batch holds distinct keys and nothing
	// collapses: every record costs a Redis write (the worst case).
	const sessions, versions = 10000, 5
	ss := make([]*schemas.SessionState, sessions)
	for i := range ss {
		ss[i] = newSession(i, t0, nil)
	}
	for v := range versions {
		var recs []rec
		for i, s := range ss {
			if v > 0 {
				ss[i] = next(s, schemas.SessionActive, time.Second)
			}
			recs = append(recs, rec{id: ss[i].SessionID, st: ss[i]})
		}
		h.produce(recs...)
	}
	b.ResetTimer()
	var records, writes int64
	for i := 0; b.Loop(); i++ {
		if err := srv.Client().FlushAll(context.Background()).Err(); err != nil {
			b.Fatal(err)
		}
		m := &counting{}
		group := fmt.Sprint("bench-", i)
		stop := h.startProjector(st, group, m, 0)
		waitFor(b, 5*time.Minute, "replay caught up", h.caughtUp(group))
		stop()
		records += m.records.Load()
		writes += m.writes.Load()
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(records)/sec, "records/s")
	b.ReportMetric(float64(writes)/sec, "writes/s")
}
