package projections_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mcpstream/mcpstream/ops/replay"
	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/projections/projectionstest"
	"github.com/mcpstream/mcpstream/schemas"
)

// BenchmarkReplay rebuilds the projections from a log of about 500,000
// events (MCPSTREAM_BENCH_EVENTS overrides) on the in-process broker, into
// PostgreSQL, and reports events/s; in the same run, the reference writes
// the same rows with a bare CopyFrom into tables of the same columns
// without keys or indexes: the most PostgreSQL can take from one client.
//
//	go test -run '^$' -bench BenchmarkReplay -benchtime 1x ./projections/
func BenchmarkReplay(b *testing.B) {
	events := 500_000
	if v := os.Getenv("MCPSTREAM_BENCH_EVENTS"); v != "" {
		events, _ = strconv.Atoi(v)
	}
	reg := schemas.MustLoad()
	l := projectionstest.NewLog(b, 12)
	// About 21 records per session with 8 calls each.
	w := projectionstest.Workload{Sessions: max(1, events/21), CallsPerSession: 8, Seed: "bench"}
	recs := w.Records(b, l.Streams.Topics, reg)
	l.Produce(b, recs)
	b.Logf("%d events on the log", len(recs))

	for _, mode := range []struct {
		name  string
		async bool
		dsns  int
	}{{"native-async-commit", true, 1}, {"native-sync-commit", false, 1}, {"router3-async-commit", true, 3}} {
		b.Run("replay-"+mode.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				cfg := projections.StoreConfig{Layout: projections.LayoutNative, Partitions: 8, AsyncCommit: mode.async}
				if mode.dsns > 1 {
					cfg.Layout = projections.LayoutPlain
				}
				for j := 0; j < mode.dsns; j++ {
					cfg.DSNs = append(cfg.DSNs, projectionstest.NewDatabase(b))
				}
				ctx := context.Background()
				st, err := projections.Open(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				cpu := startCPU(b, cfg.DSNs)
				b.StartTimer()
				start := time.Now()
				res, err := replay.Run(ctx, st, reg, replay.Config{Streams: l.Streams})
				if err != nil {
					b.Fatal(err)
				}
				elapsed := time.Since(start)
				b.StopTimer()
				cpu.report(b, int(res.Events))
				if res.Events != int64(len(recs)) {
					b.Fatalf("replayed %d events, want %d", res.Events, len(recs))
				}
				b.ReportMetric(float64(res.Events)/elapsed.Seconds(), "events/s")
				st.Close()
			}
		})
	}

	b.Run("reference-copyfrom", func(b *testing.B) {
		// The rows the replay writes (merged per key, as in its batches).
		dec, err := projections.NewDecoder(reg, l.Streams.Topics, nil)
		if err != nil {
			b.Fatal(err)
		}
		var batches []*projections.Batch
		for i := 0; i < len(recs); i += 10000 {
			batch, _ := dec.Decode(recs[i:min(i+10000, len(recs))], "")
			batches = append(batches, batch)
		}
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, projectionstest.NewDatabase(b))
			if err != nil {
				b.Fatal(err)
			}
			for _, ddl := range []string{
				`CREATE TABLE sessions (session_id text, principal text, state text, protocol_version text, client_info jsonb,
					client_capabilities jsonb, log_level text, created_at timestamptz, last_activity timestamptz, requests bigint,
					last_request_offset bigint, deleted boolean, src_topic text, src_partition integer, src_offset bigint)`,
				`CREATE TABLE tool_calls (event_id text, session_id text, principal text, tool text, args_sha256 bytea,
					accepted_at timestamptz, job_topic text, job_partition integer, job_offset bigint, executor text,
					started_at timestamptz, finished_at timestamptz, duration_ms bigint, outcome text, error_code integer,
					result_topic text, result_partition integer, result_offset bigint)`,
			} {
				if _, err := conn.Exec(ctx, ddl); err != nil {
					b.Fatal(err)
				}
			}
			cpu := startCPU(b, []string{conn.Config().ConnString()})
			b.StartTimer()
			start := time.Now()
			rows := 0
			for _, batch := range batches {
				n, err := copyBatch(ctx, conn, batch)
				if err != nil {
					b.Fatal(err)
				}
				rows += n
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cpu.report(b, len(recs))
			b.ReportMetric(float64(len(recs))/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
			conn.Close(ctx)
		}
	})
}

func copyBatch(ctx context.Context, conn *pgx.Conn, b *projections.Batch) (int, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	srows := make([][]any, len(b.Sessions))
	for i, s := range b.Sessions {
		srows[i] = []any{s.SessionID, s.Principal, s.State, s.ProtocolVersion, jsonOrNil(s.ClientInfo), jsonOrNil(s.ClientCapabilities),
			s.LogLevel, s.CreatedAt, s.LastActivity, s.Requests, s.LastRequestOffset, s.Deleted, s.Pos.Topic, s.Pos.Partition, s.Pos.Offset}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sessions"}, []string{"session_id", "principal", "state", "protocol_version",
		"client_info", "client_capabilities", "log_level", "created_at", "last_activity", "requests", "last_request_offset",
		"deleted", "src_topic", "src_partition", "src_offset"}, pgx.CopyFromRows(srows)); err != nil {
		return 0, fmt.Errorf("copying sessions: %w", err)
	}
	crows := make([][]any, len(b.Calls))
	for i, c := range b.Calls {
		row := make([]any, 18)
		row[0] = c.EventID
		if j := c.Job; j != nil {
			row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8] = j.SessionID, j.Principal, j.Tool, j.ArgsSHA256, j.AcceptedAt, j.Pos.Topic, j.Pos.Partition, j.Pos.Offset
		}
		if r := c.Result; r != nil {
			row[9], row[10], row[11], row[12], row[13], row[14], row[15], row[16], row[17] = r.Executor, r.StartedAt, r.FinishedAt,
				r.FinishedAt.Sub(r.StartedAt).Milliseconds(), r.Outcome, r.ErrorCode, r.Pos.Topic, r.Pos.Partition, r.Pos.Offset
		}
		crows[i] = row
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"tool_calls"}, []string{"event_id", "session_id", "principal", "tool", "args_sha256",
		"accepted_at", "job_topic", "job_partition", "job_offset", "executor", "started_at", "finished_at", "duration_ms", "outcome",
		"error_code", "result_topic", "result_partition", "result_offset"}, pgx.CopyFromRows(crows)); err != nil {
		return 0, fmt.Errorf("copying tool calls: %w", err)
	}
	return len(srows) + len(crows), tx.Commit(ctx)
}

func jsonOrNil(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// cpuMeter measures CPU time, not wall time: on a shared 2-core machine the
// wall-clock rate depends on whoever else runs; CPU per event does not.
// PostgreSQL's share is the CPU of the benchmark databases' backends (read
// from /proc: the server is local), excluding its background writers.
type cpuMeter struct {
	dsns []string
	pg   time.Duration
	self time.Duration
}

func startCPU(b *testing.B, dsns []string) *cpuMeter {
	m := &cpuMeter{dsns: dsns}
	m.pg, m.self = backendCPU(b, dsns), selfCPU()
	return m
}

func (m *cpuMeter) report(b *testing.B, events int) {
	pg, self := backendCPU(b, m.dsns)-m.pg, selfCPU()-m.self
	b.ReportMetric(float64(pg.Microseconds())/float64(events), "pg-cpu-µs/event")
	b.ReportMetric(float64(self.Microseconds())/float64(events), "go-cpu-µs/event")
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func backendCPU(b *testing.B, dsns []string) time.Duration {
	var total time.Duration
	for _, dsn := range dsns {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			b.Fatal(err)
		}
		rows, err := conn.Query(context.Background(), "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
		if err != nil {
			b.Fatal(err)
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		conn.Close(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		for _, pid := range pids {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue
			}
			s := string(stat)
			f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
			if len(f) < 13 {
				continue
			}
			u, _ := strconv.ParseInt(f[11], 10, 64)
			k, _ := strconv.ParseInt(f[12], 10, 64)
			total += time.Duration(u+k) * 10 * time.Millisecond // USER_HZ is 100 on Linux
		}
	}
	return total
}
