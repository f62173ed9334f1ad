package projectionstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TP names a partition.
type TP = projections.TopicPartition

// Model is what a set of records must project to: one comparable line per
// key. It is computed here independently of the projector's SQL (a
// different implementation of the same rules), so the two can disagree.
type Model struct {
	Sessions map[string]string // session id -> line
	Calls    map[string]string // event id -> line
}

// Expect folds the records keep accepts (nil: all) into a Model. Records
// must carry their partition and offset (Log.Produce sets them).
func Expect(t testing.TB, reg *schemas.Registry, topics streams.Topics, recs []*kgo.Record, keep func(*kgo.Record) bool) Model {
	t.Helper()
	sessionsTopic := streams.Table(topics.SessionsGroup())
	byKey := map[string][]*kgo.Record{}
	type half struct {
		rec *kgo.Record
	}
	jobs, results := map[string]*kgo.Record{}, map[string]*kgo.Record{}
	for _, r := range recs {
		if keep != nil && !keep(r) {
			continue
		}
		switch r.Topic {
		case sessionsTopic:
			byKey[string(r.Key)] = append(byKey[string(r.Key)], r)
		case topics.ToolCalls():
			if j := jobs[string(r.Key)]; j == nil || r.Offset < j.Offset {
				jobs[string(r.Key)] = r
			}
		case topics.ToolResults():
			if j := results[string(r.Key)]; j == nil || r.Offset < j.Offset {
				results[string(r.Key)] = r
			}
		}
	}
	m := Model{Sessions: map[string]string{}, Calls: map[string]string{}}
	for sid, rs := range byKey {
		slices.SortFunc(rs, func(a, b *kgo.Record) int { return int(a.Offset - b.Offset) })
		var last *schemas.SessionState
		deleted := false
		for _, r := range rs {
			if r.Value == nil {
				deleted = true
				continue
			}
			s, err := reg.DecodeSession(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			last, deleted = s, false
		}
		if last == nil {
			last = &schemas.SessionState{}
		}
		top := rs[len(rs)-1]
		name := ""
		if strings.Contains(string(last.ClientInfo), `"name":"agent"`) {
			name = "agent"
		}
		m.Sessions[sid] = fmt.Sprintf("%s|%s|%d|%t|%d|%d|%s", last.Principal, last.State, last.Requests, deleted, top.Partition, top.Offset, name)
	}
	ids := map[string]bool{}
	for id := range jobs {
		ids[id] = true
	}
	for id := range results {
		ids[id] = true
	}
	for id := range ids {
		session, principal, tool, args, jobPart, jobOff := "<null>", "", "", "", int32(-1), int64(-1)
		if r := jobs[id]; r != nil {
			j, err := reg.DecodeJob(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			session, principal, tool, jobPart, jobOff = j.SessionID, j.Principal, j.Tool, r.Partition, r.Offset
			if j.Arguments != nil {
				sum := sha256.Sum256(j.Arguments)
				args = hex.EncodeToString(sum[:])
			}
		}
		executor, outcome, code, duration, resOff := "", "", 0, int64(-1), int64(-1)
		if r := results[id]; r != nil {
			res, err := reg.DecodeResult(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			executor, resOff = res.Executor, r.Offset
			duration = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
			switch body := string(res.Response); {
			case strings.Contains(body, `"error":{`):
				outcome, code = "error", -32602
			case strings.Contains(body, `"isError":true`):
				outcome = "tool_error"
			default:
				outcome = "ok"
			}
		}
		m.Calls[id] = fmt.Sprintf("%s|%s|%s|%s|%d|%d|%s|%s|%d|%d|%d", session, principal, tool, args, jobPart, jobOff,
			executor, outcome, code, duration, resOff)
	}
	return m
}

// shard is one database of a store and the keys it owns.
type shard struct {
	pg   *projections.PG
	owns func(key string) bool
}

func shardsOf(t testing.TB, st projections.Store) []shard {
	switch s := st.(type) {
	case *projections.PG:
		return []shard{{s, func(string) bool { return true }}}
	case *projections.Router:
		var out []shard
		for i, pg := range s.Shards() {
			out = append(out, shard{pg, func(k string) bool { return s.ShardOf(k) == i }})
		}
		return out
	}
	t.Fatalf("unknown store %T", st)
	return nil
}

// Check compares every database of store with the model of the records
// below that database's own committed offsets (and at or above from): the
// rows and the offsets were committed together, so they must tell the
// same story at every moment, not only at the end. It also fails when a
// key is stored on two shards. It returns the number of rows compared.
//
// Each database's offsets and rows are read in one REPEATABLE READ
// transaction, i.e. one snapshot. WHY: a database may still be committing
// while Check reads, even after the projector process is gone: a
// projector SIGKILLed right after sending COMMIT leaves a server backend
// that finishes the commit afterwards (seen under load: a shard's offsets
// moved 40 records 5 ms after the killed child was reaped). Reading the
// offsets, then the sessions, then the tool calls in separate statements
// could straddle that commit and see its rows without its offsets.
func Check(t testing.TB, st projections.Store, gen string, reg *schemas.Registry, topics streams.Topics, recs []*kgo.Record, from map[TP]int64) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]int{}
	total := 0
	for i, sh := range shardsOf(t, st) {
		offs, got := readSnapshot(t, ctx, sh.pg, gen)
		model := Expect(t, reg, topics, recs, func(r *kgo.Record) bool {
			k := TP{Topic: r.Topic, Partition: r.Partition}
			return r.Offset < offs[k] && r.Offset >= from[k] && sh.owns(string(r.Key))
		})
		diff(t, fmt.Sprintf("shard %d (%s) sessions", i, sh.pg.Name()), model.Sessions, got.Sessions)
		diff(t, fmt.Sprintf("shard %d (%s) tool_calls", i, sh.pg.Name()), model.Calls, got.Calls)
		for k := range got.Sessions {
			seen["s/"+k]++
		}
		for k := range got.Calls {
			seen["c/"+k]++
		}
		total += len(got.Sessions) + len(got.Calls)
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("%s is stored on %d shards", k, n)
		}
	}
	return total
}

// checkHook, when set (by this package's own tests), runs in Check after a
// database's offsets are read and before its rows are: a commit injected
// there must not be seen.
var checkHook func(pg *projections.PG)

// readSnapshot reads one database's offsets of the live projections' table
// sets for gen and its rows, in one snapshot.
func readSnapshot(t testing.TB, ctx context.Context, pg *projections.PG, gen string) (map[TP]int64, Model) {
	t.Helper()
	tx, err := pg.Pool().BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatalf("beginning snapshot of %s: %v", pg.Name(), err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var consumers []string
	for _, p := range projections.Live {
		consumers = append(consumers, projections.ConsumerName(p, gen))
	}
	rows, err := tx.Query(ctx, "SELECT topic, partition, next_offset FROM projection_offsets WHERE consumer = ANY($1)", consumers)
	if err != nil {
		t.Fatalf("reading offsets of %s: %v", pg.Name(), err)
	}
	offs := map[TP]int64{}
	var tp TP
	var next int64
	if _, err := pgx.ForEachRow(rows, []any{&tp.Topic, &tp.Partition, &next}, func() error { offs[tp] = next; return nil }); err != nil {
		t.Fatalf("reading offsets of %s: %v", pg.Name(), err)
	}
	if checkHook != nil {
		checkHook(pg)
	}
	return offs, readRows(t, ctx, tx, gen)
}

func readRows(t testing.TB, ctx context.Context, q pgx.Tx, gen string) Model {
	t.Helper()
	m := Model{Sessions: map[string]string{}, Calls: map[string]string{}}
	rows, err := q.Query(ctx, `SELECT session_id, principal || '|' || state || '|' || requests || '|' || deleted || '|' ||
		src_partition || '|' || src_offset || '|' || coalesce(client_info->>'name', '') FROM `+projections.TableName(projections.Sessions, gen))
	if err != nil {
		t.Fatal(err)
	}
	var k, v string
	if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error { m.Sessions[k] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	rows, err = q.Query(ctx, `SELECT event_id, concat_ws('|', coalesce(session_id, '<null>'), coalesce(principal, ''),
		coalesce(tool, ''), coalesce(encode(args_sha256, 'hex'), ''), coalesce(job_partition, -1), coalesce(job_offset, -1),
		coalesce(executor, ''), coalesce(outcome, ''), coalesce(error_code, 0), coalesce(duration_ms, -1), coalesce(result_offset, -1))
		FROM `+projections.TableName(projections.ToolCalls, gen))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error { m.Calls[k] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	return m
}

func diff(t testing.TB, what string, want, got map[string]string) {
	t.Helper()
	var problems []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("missing %s: want %s", k, w))
		case g != w:
			problems = append(problems, fmt.Sprintf("row %s:\n  got  %s\n  want %s", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			problems = append(problems, fmt.Sprintf("unexpected %s: %s", k, g))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		if len(problems) > 8 {
			problems = append(problems[:8], fmt.Sprintf("... and %d more", len(problems)-8))
		}
		t.Errorf("%s: %d rows wrong (want %d rows, got %d):\n%s", what, len(problems), len(want), len(got), strings.Join(problems, "\n"))
	}
}

// CaughtUp reports whether the store's offsets of gen reach the end of
// every source partition of the live projections, and if not, where not.
func CaughtUp(t testing.TB, st projections.Store, l *Log, gen string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var topics []string
	for _, p := range projections.Live {
		topics = append(topics, projections.Sources(l.Streams.Topics, p)...)
	}
	ends, err := l.Adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	offs := map[TP]int64{}
	for _, p := range projections.Live {
		m, err := st.Offsets(ctx, p, gen)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			offs[k] = v
		}
	}
	behind := ""
	ends.Each(func(o kadm.ListedOffset) {
		k := TP{Topic: o.Topic, Partition: o.Partition}
		if o.Offset > 0 && offs[k] < o.Offset && behind == "" {
			behind = fmt.Sprintf("%s/%d at %d of %d", o.Topic, o.Partition, offs[k], o.Offset)
		}
	})
	return behind == "", behind
}

// WaitCaughtUp waits until CaughtUp, or fails the test after timeout.
func WaitCaughtUp(t testing.TB, st projections.Store, l *Log, gen string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, behind := CaughtUp(t, st, l, gen)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projection %q not caught up after %s: %s", gen, timeout, behind)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Offsets sums the committed offsets of the live projections (progress).
func Offsets(t testing.TB, st projections.Store, gen string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int64
	for _, p := range projections.Live {
		m, err := st.Offsets(ctx, p, gen)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range m {
			n += v
		}
	}
	return n
}
