package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PG is the projections in one PostgreSQL database (any Layout).
type PG struct {
	pool *pgxpool.Pool
	cfg  StoreConfig
	name string
	log  *slog.Logger
	// layout is set by Migrate, which several projectors sharing a store
	// may run at once; read it through Layout.
	layoutMu sync.Mutex
	layout   Layout

	mu    sync.Mutex
	stmts map[string]*statements // by generation
}

var _ Store = (*PG)(nil)

// OpenPG connects to one database. It does not migrate: Open does, or call
// Migrate.
func OpenPG(ctx context.Context, dsn string, cfg StoreConfig) (*PG, error) {
	cfg = cfg.withDefaults()
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing projections DSN: %w", err)
	}
	pc.MaxConns = cfg.MaxConns
	if cfg.AsyncCommit {
		pc.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connecting to projections database: %w", err)
	}
	name := fmt.Sprintf("%s:%d/%s", pc.ConnConfig.Host, pc.ConnConfig.Port, pc.ConnConfig.Database)
	return &PG{pool: pool, cfg: cfg, name: name, log: cfg.Logger.With("db", name), stmts: map[string]*statements{}}, nil
}

// Name identifies the database (host:port/dbname): a Router's ring point.
func (s *PG) Name() string { return s.name }

// Pool exposes the connection pool for read queries.
func (s *PG) Pool() *pgxpool.Pool { return s.pool }

// Layout is the layout in force after Migrate.
func (s *PG) Layout() Layout {
	s.layoutMu.Lock()
	defer s.layoutMu.Unlock()
	return s.layout
}

// Migrate implements Store.
func (s *PG) Migrate(ctx context.Context) error {
	layout, err := migrate(ctx, s.pool, s.cfg.Layout, s.cfg.Partitions)
	if err != nil {
		return fmt.Errorf("migrating %s: %w", s.name, err)
	}
	s.layoutMu.Lock()
	s.layout = layout
	s.layoutMu.Unlock()
	return nil
}

// Close implements Store.
func (s *PG) Close() { s.pool.Close() }

// Offsets implements Store.
func (s *PG) Offsets(ctx context.Context, projection, gen string) (map[TopicPartition]int64, error) {
	rows, err := s.pool.Query(ctx, "SELECT topic, partition, next_offset FROM projection_offsets WHERE consumer = $1",
		consumerName(projection, gen))
	if err != nil {
		return nil, fmt.Errorf("reading offsets of %s on %s: %w", consumerName(projection, gen), s.name, err)
	}
	out := map[TopicPartition]int64{}
	var tp TopicPartition
	var next int64
	_, err = pgx.ForEachRow(rows, []any{&tp.Topic, &tp.Partition, &next}, func() error {
		out[tp] = next
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading offsets of %s on %s: %w", consumerName(projection, gen), s.name, err)
	}
	return out, nil
}

// lockKey is a projection's advisory lock: live projectors hold it shared
// while they write, Swap exclusively while it renames.
func lockKey(projection string) int64 {
	h := fnv.New64a()
	h.Write([]byte("mcpstream-projection:" + projection))
	return int64(h.Sum64())
}

// statements is the SQL of one table set.
type statements struct {
	sessions, calls string
}

func (s *PG) sql(gen string) *statements {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stmts[gen]; ok {
		return st
	}
	st := &statements{sessions: sessionsUpsert(tableName(Sessions, gen)), calls: callsUpsert(tableName(ToolCalls, gen))}
	s.stmts[gen] = st
	return st
}

var sessionCols = []string{"session_id", "principal", "state", "protocol_version", "client_info", "client_capabilities",
	"log_level", "created_at", "last_activity", "requests", "last_request_offset", "deleted", "src_topic", "src_partition", "src_offset"}
var sessionTypes = []string{"text", "text", "text", "text", "text", "text",
	"text", "timestamptz", "timestamptz", "int8", "int8", "bool", "text", "int4", "int8"}

// sessionsUpsert: last write wins by offset. A tombstone keeps the row's
// data and marks it deleted, so its position still fences older records. A
// bare tombstone (no state merged into it in the batch) has state ” (a
// real state never does) and keeps the table's data; one that followed a
// state in its batch carries that state's data.
func sessionsUpsert(table string) string {
	var sel, set []string
	for _, c := range sessionCols {
		switch c {
		case "client_info", "client_capabilities":
			sel = append(sel, "u."+c+"::jsonb")
		default:
			sel = append(sel, "u."+c)
		}
		switch c {
		case "session_id":
		case "deleted", "src_topic", "src_partition", "src_offset":
			set = append(set, c+" = excluded."+c)
		default:
			set = append(set, fmt.Sprintf("%s = CASE WHEN excluded.state = '' THEN t.%s ELSE excluded.%s END", c, c, c))
		}
	}
	return fmt.Sprintf(`INSERT INTO %s AS t (%s)
SELECT %s FROM unnest(%s) AS u(%s)
ON CONFLICT (session_id) DO UPDATE SET %s
WHERE excluded.src_offset > t.src_offset`,
		table, strings.Join(sessionCols, ", "), strings.Join(sel, ", "), params(sessionTypes),
		strings.Join(sessionCols, ", "), strings.Join(set, ",\n  "))
}

var jobCols = []string{"session_id", "principal", "tool", "args_sha256", "accepted_at", "job_topic", "job_partition", "job_offset"}
var resultCols = []string{"executor", "started_at", "finished_at", "duration_ms", "outcome", "error_code", "result_topic", "result_partition", "result_offset"}
var callTypes = []string{"text", "text", "text", "text", "bytea", "timestamptz", "text", "int4", "int8",
	"text", "timestamptz", "timestamptz", "int8", "text", "int4", "text", "int4", "int8"}

// callsUpsert guards each half by its own offset, lowest wins: absent
// halves are NULL, and NULL < x is not true, so they never overwrite.
func callsUpsert(table string) string {
	cols := append(append([]string{"event_id"}, jobCols...), resultCols...)
	const maxOff = "9223372036854775807"
	var set []string
	for _, c := range jobCols {
		set = append(set, fmt.Sprintf("%s = CASE WHEN excluded.job_offset < coalesce(t.job_offset, %s) THEN excluded.%s ELSE t.%s END", c, maxOff, c, c))
	}
	for _, c := range resultCols {
		set = append(set, fmt.Sprintf("%s = CASE WHEN excluded.result_offset < coalesce(t.result_offset, %s) THEN excluded.%s ELSE t.%s END", c, maxOff, c, c))
	}
	return fmt.Sprintf(`INSERT INTO %s AS t (%s)
SELECT * FROM unnest(%s) AS u(%s)
ON CONFLICT (event_id) DO UPDATE SET %s
WHERE excluded.job_offset < coalesce(t.job_offset, %s) OR excluded.result_offset < coalesce(t.result_offset, %s)`,
		table, strings.Join(cols, ", "), params(callTypes), strings.Join(cols, ", "), strings.Join(set, ",\n  "), maxOff, maxOff)
}

// offsetsUpsert only moves offsets forward: each value written means "every
// record below it is applied", so the larger of two such statements is also
// true, and a projector instance that overlapped another in a rebalance, or
// a live projector behind a swapped-in rebuild, never moves it back.
const offsetsUpsert = `INSERT INTO projection_offsets AS t (consumer, topic, partition, next_offset, updated_at)
SELECT u.c, u.t, u.p, u.n, now() FROM unnest($1::text[], $2::text[], $3::int4[], $4::int8[]) AS u(c, t, p, n)
ON CONFLICT (consumer, topic, partition) DO UPDATE
SET next_offset = greatest(t.next_offset, excluded.next_offset), updated_at = excluded.updated_at`

func params(types []string) string {
	ps := make([]string, len(types))
	for i, t := range types {
		ps[i] = fmt.Sprintf("$%d::%s[]", i+1, t)
	}
	return strings.Join(ps, ", ")
}

// Apply implements Store.
func (s *PG) Apply(ctx context.Context, b *Batch) error {
	if b.Empty() {
		return nil
	}
	if n := s.cfg.Parallel; n > 1 && len(b.Sessions)+len(b.Calls) >= s.cfg.SplitRows {
		parts := b.SplitByPartition(n)
		errs := make([]error, len(parts))
		var wg sync.WaitGroup
		for i, p := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.apply(ctx, p)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	return s.apply(ctx, b)
}

// apply writes b in one transaction.
func (s *PG) apply(ctx context.Context, b *Batch) error {
	if b.Empty() {
		return nil
	}
	st := s.sql(b.Gen)
	q := &pgx.Batch{}
	if b.Gen == "" {
		keys := batchLockKeys(b)
		q.Queue("SELECT pg_advisory_xact_lock_shared(k) FROM unnest($1::int8[]) AS k", keys)
	}
	if len(b.Sessions) > 0 {
		q.Queue(st.sessions, sessionArgs(b.Sessions)...)
	}
	if len(b.Calls) > 0 {
		q.Queue(st.calls, callArgs(b.Calls)...)
	}
	if len(b.Offsets) > 0 {
		c, t, p, n := offsetArgs(b.Offsets)
		q.Queue(offsetsUpsert, c, t, p, n)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.SendBatch(ctx, q).Close(); err != nil {
			return err
		}
		if s.cfg.BeforeCommit != nil {
			return s.cfg.BeforeCommit(ctx, b)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("applying batch of %d events to %s: %w", b.Events, s.name, err)
	}
	return nil
}

func batchLockKeys(b *Batch) []int64 {
	set := map[int64]bool{}
	if len(b.Sessions) > 0 {
		set[lockKey(Sessions)] = true
	}
	if len(b.Calls) > 0 {
		set[lockKey(ToolCalls)] = true
	}
	for _, o := range b.Offsets {
		set[lockKey(o.Consumer)] = true
	}
	keys := make([]int64, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	// One order everywhere: two transactions taking the same locks in
	// different orders could deadlock against Swap.
	slices.Sort(keys)
	return keys
}

func text(s string) pgtype.Text { return pgtype.Text{String: s, Valid: true} }

func jsonText(b []byte) pgtype.Text {
	if b == nil || !json.Valid(b) {
		return pgtype.Text{}
	}
	return pgtype.Text{String: string(b), Valid: true}
}

func sessionArgs(rows []SessionRow) []any {
	n := len(rows)
	var (
		id, principal, state, version, info, caps, level, topic = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]pgtype.Text, n), make([]pgtype.Text, n), make([]string, n), make([]string, n)
		created, active  = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		requests, lastRq = make([]int64, n), make([]int64, n)
		deleted          = make([]bool, n)
		part             = make([]int32, n)
		off              = make([]int64, n)
	)
	for i, r := range rows {
		id[i], principal[i], state[i], version[i] = r.SessionID, r.Principal, r.State, r.ProtocolVersion
		info[i], caps[i], level[i] = jsonText(r.ClientInfo), jsonText(r.ClientCapabilities), r.LogLevel
		created[i] = pgtype.Timestamptz{Time: r.CreatedAt, Valid: !r.CreatedAt.IsZero()}
		active[i] = pgtype.Timestamptz{Time: r.LastActivity, Valid: !r.LastActivity.IsZero()}
		requests[i], lastRq[i], deleted[i] = r.Requests, r.LastRequestOffset, r.Deleted
		topic[i], part[i], off[i] = r.Pos.Topic, r.Pos.Partition, r.Pos.Offset
	}
	return []any{id, principal, state, version, info, caps, level, created, active, requests, lastRq, deleted, topic, part, off}
}

func callArgs(rows []CallRow) []any {
	n := len(rows)
	var (
		id                                 = make([]string, n)
		session, principal, tool, jobTopic = make([]pgtype.Text, n), make([]pgtype.Text, n), make([]pgtype.Text, n), make([]pgtype.Text, n)
		args                               = make([][]byte, n)
		accepted, started, finished        = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		jobPart, resPart, code             = make([]pgtype.Int4, n), make([]pgtype.Int4, n), make([]pgtype.Int4, n)
		jobOff, resOff, duration           = make([]pgtype.Int8, n), make([]pgtype.Int8, n), make([]pgtype.Int8, n)
		executor, outcome, resTopic        = make([]pgtype.Text, n), make([]pgtype.Text, n), make([]pgtype.Text, n)
	)
	for i, r := range rows {
		id[i] = r.EventID
		if j := r.Job; j != nil {
			session[i], principal[i], tool[i] = text(j.SessionID), text(j.Principal), text(j.Tool)
			args[i] = j.ArgsSHA256
			accepted[i] = pgtype.Timestamptz{Time: j.AcceptedAt, Valid: !j.AcceptedAt.IsZero()}
			jobTopic[i], jobPart[i], jobOff[i] = text(j.Pos.Topic), pgtype.Int4{Int32: j.Pos.Partition, Valid: true}, pgtype.Int8{Int64: j.Pos.Offset, Valid: true}
		}
		if r := r.Result; r != nil {
			executor[i] = text(r.Executor)
			started[i] = pgtype.Timestamptz{Time: r.StartedAt, Valid: !r.StartedAt.IsZero()}
			finished[i] = pgtype.Timestamptz{Time: r.FinishedAt, Valid: !r.FinishedAt.IsZero()}
			if started[i].Valid && finished[i].Valid {
				duration[i] = pgtype.Int8{Int64: r.FinishedAt.Sub(r.StartedAt).Milliseconds(), Valid: true}
			}
			outcome[i] = text(r.Outcome)
			if r.ErrorCode != nil {
				code[i] = pgtype.Int4{Int32: *r.ErrorCode, Valid: true}
			}
			resTopic[i], resPart[i], resOff[i] = text(r.Pos.Topic), pgtype.Int4{Int32: r.Pos.Partition, Valid: true}, pgtype.Int8{Int64: r.Pos.Offset, Valid: true}
		}
	}
	return []any{id, session, principal, tool, args, accepted, jobTopic, jobPart, jobOff,
		executor, started, finished, duration, outcome, code, resTopic, resPart, resOff}
}

func offsetArgs(os []Offset) ([]string, []string, []int32, []int64) {
	c, t, p, n := make([]string, len(os)), make([]string, len(os)), make([]int32, len(os)), make([]int64, len(os))
	for i, o := range os {
		c[i], t[i], p[i], n[i] = o.Consumer, o.Topic, o.Partition, o.Next
	}
	return c, t, p, n
}

// BeginRebuild implements Store.
func (s *PG) BeginRebuild(ctx context.Context, runs []Run) error {
	existing, err := s.Runs(ctx)
	if err != nil {
		return err
	}
	have := map[string]Run{}
	for _, r := range existing {
		have[r.Projection] = r
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, r := range runs {
			if old, ok := have[r.Projection]; ok {
				if old.Generation == r.Generation {
					continue
				}
				return fmt.Errorf("projection %s has an unfinished rebuild %s: resume or abort it first", r.Projection, old.Generation)
			}
			spec, ok := specs[r.Projection]
			if !ok {
				return fmt.Errorf("unknown projection %q", r.Projection)
			}
			// DDL first: Citus wants distributed DDL before writes in a
			// transaction.
			for _, st := range createTable(spec, tableName(r.Projection, r.Generation), s.Layout(), s.cfg.Partitions) {
				if _, err := tx.Exec(ctx, st); err != nil {
					return fmt.Errorf("%s: %w", firstLine(st), err)
				}
			}
		}
		for _, r := range runs {
			if _, ok := have[r.Projection]; ok {
				continue
			}
			start, err := json.Marshal(encodeStart(r.Start))
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO replay_runs (projection, generation, from_spec, start_offsets, state, started_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, now(), now())`, r.Projection, r.Generation, r.From, string(start), RunBuilding); err != nil {
				return fmt.Errorf("recording rebuild of %s: %w", r.Projection, err)
			}
			var offs []Offset
			for tp, o := range r.Start {
				offs = append(offs, Offset{Consumer: consumerName(r.Projection, r.Generation), Topic: tp.Topic, Partition: tp.Partition, Next: o})
			}
			if len(offs) > 0 {
				c, t, p, n := offsetArgs(offs)
				if _, err := tx.Exec(ctx, offsetsUpsert, c, t, p, n); err != nil {
					return fmt.Errorf("recording start offsets of %s: %w", r.Projection, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("beginning rebuild on %s: %w", s.name, err)
	}
	return nil
}

func encodeStart(m map[TopicPartition]int64) map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for tp, o := range m {
		if out[tp.Topic] == nil {
			out[tp.Topic] = map[string]int64{}
		}
		out[tp.Topic][fmt.Sprint(tp.Partition)] = o
	}
	return out
}

func decodeStart(b []byte) (map[TopicPartition]int64, error) {
	var raw map[string]map[string]int64
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	out := map[TopicPartition]int64{}
	for t, ps := range raw {
		for p, o := range ps {
			var n int32
			if _, err := fmt.Sscan(p, &n); err != nil {
				return nil, err
			}
			out[TopicPartition{t, n}] = o
		}
	}
	return out, nil
}

// Runs implements Store.
func (s *PG) Runs(ctx context.Context) ([]Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT projection, generation, from_spec, start_offsets::text, state, started_at
		FROM replay_runs ORDER BY projection`)
	if err != nil {
		return nil, fmt.Errorf("reading replay runs on %s: %w", s.name, err)
	}
	var out []Run
	var r Run
	var start string
	_, err = pgx.ForEachRow(rows, []any{&r.Projection, &r.Generation, &r.From, &start, &r.State, &r.StartedAt}, func() error {
		m, err := decodeStart([]byte(start))
		if err != nil {
			return fmt.Errorf("decoding start offsets of %s: %w", r.Projection, err)
		}
		r.Start = m
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading replay runs on %s: %w", s.name, err)
	}
	return out, nil
}

// Swap implements Store.
func (s *PG) Swap(ctx context.Context, projections []string, gen string) error {
	ps := slices.Clone(projections)
	sort.Slice(ps, func(i, j int) bool { return lockKey(ps[i]) < lockKey(ps[j]) })
	var behind *ErrBehind
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var pending int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM replay_runs WHERE generation = $1 AND projection = ANY($2)",
			gen, ps).Scan(&pending); err != nil {
			return err
		}
		if pending == 0 {
			return nil // swapped already (a Router resuming a partial swap)
		}
		if pending != len(ps) {
			return fmt.Errorf("generation %s covers %d of the %d projections asked: %w", gen, pending, len(ps), ErrNoRun)
		}
		for _, p := range ps {
			// Exclusive: waits for live projectors' in-flight
			// transactions and holds off their next ones until commit.
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(p)); err != nil {
				return err
			}
		}
		need := map[TopicPartition]int64{}
		for _, p := range ps {
			rows, err := tx.Query(ctx, `SELECT l.topic, l.partition, l.next_offset FROM projection_offsets l
				LEFT JOIN projection_offsets r ON r.consumer = $2 AND r.topic = l.topic AND r.partition = l.partition
				WHERE l.consumer = $1 AND l.next_offset > coalesce(r.next_offset, -1)`, consumerName(p, ""), consumerName(p, gen))
			if err != nil {
				return err
			}
			var tp TopicPartition
			var n int64
			if _, err := pgx.ForEachRow(rows, []any{&tp.Topic, &tp.Partition, &n}, func() error { need[tp] = n; return nil }); err != nil {
				return err
			}
		}
		if len(need) > 0 {
			behind = &ErrBehind{Need: need}
			return behind
		}
		for _, p := range ps {
			live, fresh, old := tableName(p, ""), tableName(p, gen), tableName(p, "old_"+gen)
			for _, st := range []string{
				"ALTER TABLE " + live + " RENAME TO " + old,
				"ALTER TABLE " + fresh + " RENAME TO " + live,
				"DROP TABLE " + old,
			} {
				if _, err := tx.Exec(ctx, st); err != nil {
					return fmt.Errorf("%s: %w", st, err)
				}
			}
			if _, err := tx.Exec(ctx, "DELETE FROM projection_offsets WHERE consumer = $1", consumerName(p, "")); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "UPDATE projection_offsets SET consumer = $1 WHERE consumer = $2", consumerName(p, ""), consumerName(p, gen)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "DELETE FROM replay_runs WHERE projection = $1", p); err != nil {
				return err
			}
		}
		return nil
	})
	if behind != nil && errors.Is(err, behind) {
		return behind
	}
	if err != nil {
		return fmt.Errorf("swapping rebuild %s on %s: %w", gen, s.name, err)
	}
	s.mu.Lock()
	delete(s.stmts, gen)
	s.mu.Unlock()
	return nil
}

// AbortRebuild implements Store.
func (s *PG) AbortRebuild(ctx context.Context, projections []string, gen string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, p := range projections {
			if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+tableName(p, gen)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "DELETE FROM projection_offsets WHERE consumer = $1", consumerName(p, gen)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "DELETE FROM replay_runs WHERE projection = $1 AND generation = $2", p, gen); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("aborting rebuild %s on %s: %w", gen, s.name, err)
	}
	return nil
}

// Dump implements Store.
func (s *PG) Dump(ctx context.Context, projection, gen string) ([]string, error) {
	spec, ok := specs[projection]
	if !ok {
		return nil, fmt.Errorf("unknown projection %q", projection)
	}
	rows, err := s.pool.Query(ctx, fmt.Sprintf("SELECT t::text FROM %s t ORDER BY %s", tableName(projection, gen), spec.dumpOrder))
	if err != nil {
		return nil, fmt.Errorf("dumping %s on %s: %w", tableName(projection, gen), s.name, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("dumping %s on %s: %w", tableName(projection, gen), s.name, err)
	}
	// Byte order, not the database's collation: a Router's merged dump and
	// a single database's compare line by line.
	slices.Sort(out)
	return out, nil
}
