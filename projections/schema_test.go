package projections_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/projections/projectionstest"
)

// The Citus half of the schema, as text: it runs for real only where the
// extension exists (TestSuite/citus), but what it asks Citus to do is
// checked everywhere.
func TestCitusStatements(t *testing.T) {
	all := strings.Join(projections.MigrationSQL(projections.LayoutCitus, 0), "\n")
	for _, want := range []string{
		"CREATE EXTENSION IF NOT EXISTS citus",
		"SELECT create_distributed_table('sessions', 'session_id', colocate_with => 'default')",
		"SELECT create_distributed_table('tasks', 'session_id', colocate_with => 'sessions')",
		"SELECT create_distributed_table('tool_calls', 'event_id', colocate_with => 'default')",
		"SELECT create_reference_table('upstream_health')",
		"SELECT create_reference_table('outcome_codes')",
		"SELECT create_reference_table('projection_offsets')",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("citus migration lacks %q", want)
		}
	}
	if strings.Contains(all, "PARTITION BY") {
		t.Error("citus layout also partitions natively")
	}
	rebuild := strings.Join(projections.CreateTableSQL(projections.ToolCalls, "r1", projections.LayoutCitus, 0), "\n")
	if !strings.Contains(rebuild, "create_distributed_table('tool_calls__r1', 'event_id', colocate_with => 'tool_calls')") {
		t.Errorf("a rebuild table is not co-located with its live table:\n%s", rebuild)
	}
	native := strings.Join(projections.CreateTableSQL(projections.Sessions, "", projections.LayoutNative, 4), "\n")
	if !strings.Contains(native, "PARTITION BY HASH (session_id)") || !strings.Contains(native, "MODULUS 4, REMAINDER 3") {
		t.Errorf("native layout:\n%s", native)
	}
}

func columns(t *testing.T, conn *pgx.Conn, table string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(collation_name, '')
		FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, table)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

func indexes(t *testing.T, conn *pgx.Conn, table string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT regexp_replace(indexdef, '^.* USING ', '') FROM pg_indexes WHERE tablename = $1`, table)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// Migrations run once, are recorded, refuse another layout; a rebuild's
// tables have exactly the live tables' columns and indexes (a migration
// that alters a live table without updating the spec fails here).
func TestMigrationsAndSchemaMatchesSpec(t *testing.T) {
	for _, layout := range []projections.Layout{projections.LayoutNative, projections.LayoutPlain} {
		t.Run(string(layout), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			dsn := projectionstest.NewDatabase(t)
			cfg := projections.StoreConfig{DSNs: []string{dsn}, Layout: layout, Partitions: 4}
			for i := 0; i < 2; i++ {
				st, err := projections.Open(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				st.Close()
			}
			other := projections.LayoutPlain
			if layout == projections.LayoutPlain {
				other = projections.LayoutNative
			}
			if _, err := projections.Open(ctx, projections.StoreConfig{DSNs: []string{dsn}, Layout: other, Partitions: 4}); !errors.Is(err, projections.ErrLayoutMismatch) {
				t.Fatalf("opening with layout %s: %v, want ErrLayoutMismatch", other, err)
			}
			st, err := projections.Open(ctx, projections.StoreConfig{DSNs: []string{dsn}, Partitions: 4}) // auto adopts
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if got := st.(*projections.PG).Layout(); got != layout {
				t.Fatalf("auto layout = %s, want the stored %s", got, layout)
			}
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var versions int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&versions); err != nil || versions != 1 {
				t.Fatalf("schema_migrations rows = %d (%v), want 1", versions, err)
			}
			all := []string{projections.Sessions, projections.ToolCalls, projections.Tasks, projections.UpstreamHealth}
			var runs []projections.Run
			for _, p := range all {
				runs = append(runs, projections.Run{Projection: p, Generation: "r1", From: "earliest"})
			}
			if err := st.BeginRebuild(ctx, runs); err != nil {
				t.Fatal(err)
			}
			if err := st.BeginRebuild(ctx, runs); err != nil {
				t.Fatalf("BeginRebuild is not idempotent: %v", err)
			}
			for _, p := range all {
				live, fresh := columns(t, conn, p), columns(t, conn, projections.TableName(p, "r1"))
				if len(live) == 0 || !slices.Equal(live, fresh) {
					t.Errorf("%s columns differ:\nlive  %v\nfresh %v", p, live, fresh)
				}
				li, fi := indexes(t, conn, p), indexes(t, conn, projections.TableName(p, "r1"))
				if !slices.Equal(li, fi) {
					t.Errorf("%s indexes differ:\nlive  %v\nfresh %v", p, li, fi)
				}
			}
			if err := st.AbortRebuild(ctx, all, "r1"); err != nil {
				t.Fatal(err)
			}
			if runs, err := st.Runs(ctx); err != nil || len(runs) != 0 {
				t.Fatalf("runs after abort: %v %v", runs, err)
			}
		})
	}
}

func TestCreateDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := projectionstest.NewDatabase(t) // exists: a no-op
	if err := projections.CreateDatabase(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	fresh := strings.Replace(dsn, "/mcpstream_t_", "/mcpstream_tc_", 1)
	if err := projections.CreateDatabase(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, projectionstest.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fresh[strings.LastIndex(fresh, "/")+1 : strings.IndexByte(fresh, '?')]
	if _, err := conn.Exec(ctx, "DROP DATABASE "+name); err != nil {
		t.Fatalf("the created database is not there: %v", err)
	}
}
