package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Layout is how one database stores the projection tables. The columns,
// keys and constraints are the same in every layout; only the physical
// spread differs.
type Layout string

// Layouts.
const (
	// LayoutAuto picks LayoutCitus when the citus extension is installed in
	// the database, LayoutNative otherwise; on a database already migrated
	// it adopts the stored layout.
	LayoutAuto Layout = ""
	// LayoutNative partitions every sharded table with PARTITION BY HASH on
	// its shard key. Every primary key includes the key, as both native
	// partitioning and Citus require.
	LayoutNative Layout = "native"
	// LayoutCitus distributes sharded tables by their shard key
	// (create_distributed_table; session-keyed tables co-located with
	// sessions) and makes small catalogues reference tables.
	LayoutCitus Layout = "citus"
	// LayoutPlain is one heap per table: the layout of each shard behind a
	// Router, and of small deployments.
	LayoutPlain Layout = "plain"
)

// Projection names: each is a set of tables fed by a set of topics, with
// its own consumer offsets.
const (
	Sessions       = "sessions"
	ToolCalls      = "tool_calls"
	Tasks          = "tasks"           // schema only: tasks arrive with issue 3
	UpstreamHealth = "upstream_health" // schema only: upstream health arrives with issue 4
)

// Live lists the projections that have sources today, in apply order.
var Live = []string{Sessions, ToolCalls}

// tableSpec is the latest definition of one table. Migrations create live
// tables from it and rebuilds create fresh ones, so a column change is a
// new migration that ALTERs the live table AND an edit here
// (TestSchemaMatchesSpec catches one without the other).
type tableSpec struct {
	name    string
	columns string
	// key is the shard key: hash partitioning, Citus distribution column
	// and Router ring key. Empty: a small catalogue (a reference table in
	// Citus, one heap elsewhere).
	key        string
	colocate   string // Citus colocate_with
	indexes    []string
	conflict   string // ON CONFLICT target
	dumpOrder  string
	fillfactor int // 0: PostgreSQL's default (100)
}

var specs = map[string]tableSpec{
	Sessions: {
		name: Sessions,
		columns: `
	session_id          text        COLLATE "C" NOT NULL,
	principal           text        COLLATE "C" NOT NULL,
	state               text        NOT NULL,
	protocol_version    text        NOT NULL,
	client_info         jsonb,
	client_capabilities jsonb,
	log_level           text        NOT NULL,
	created_at          timestamptz,
	last_activity       timestamptz,
	requests            bigint      NOT NULL,
	last_request_offset bigint      NOT NULL,
	deleted             boolean     NOT NULL,
	src_topic           text        NOT NULL,
	src_partition       integer     NOT NULL,
	src_offset          bigint      NOT NULL,
	PRIMARY KEY (session_id)`,
		key:        "session_id",
		indexes:    []string{"(principal)"},
		conflict:   "(session_id)",
		dumpOrder:  "session_id",
		fillfactor: 70,
	},
	ToolCalls: {
		name: ToolCalls,
		// Every column but event_id is nullable: a result can be projected
		// before its job (the topics are fetched independently).
		columns: `
	event_id         text     COLLATE "C" NOT NULL,
	session_id       text     COLLATE "C",
	principal        text     COLLATE "C",
	tool             text,
	args_sha256      bytea,
	accepted_at      timestamptz,
	job_topic        text,
	job_partition    integer,
	job_offset       bigint,
	executor         text,
	started_at       timestamptz,
	finished_at      timestamptz,
	duration_ms      bigint,
	outcome          text,
	error_code       integer,
	result_topic     text,
	result_partition integer,
	result_offset    bigint,
	PRIMARY KEY (event_id)`,
		// event_id, not session_id: a ToolResult carries only the event id,
		// and 2026-07-28 calls have no session (every stateless call would
		// land on one shard). See DESIGN.md, "Projections".
		key:        "event_id",
		indexes:    []string{"(principal, accepted_at)", "(session_id)"},
		conflict:   "(event_id)",
		dumpOrder:  "event_id",
		fillfactor: 70,
	},
	Tasks: {
		name: Tasks,
		columns: `
	session_id       text        COLLATE "C" NOT NULL,
	task_id          text        COLLATE "C" NOT NULL,
	principal        text        COLLATE "C" NOT NULL,
	event_id         text,
	tool             text,
	status           text        NOT NULL,
	status_message   text,
	created_at       timestamptz,
	updated_at       timestamptz,
	ttl_ms           bigint,
	poll_interval_ms bigint,
	src_topic        text        NOT NULL,
	src_partition    integer     NOT NULL,
	src_offset       bigint      NOT NULL,
	PRIMARY KEY (session_id, task_id)`,
		key:       "session_id",
		colocate:  Sessions,
		indexes:   []string{"(principal)"},
		conflict:  "(session_id, task_id)",
		dumpOrder: "session_id, task_id",
	},
	UpstreamHealth: {
		name: UpstreamHealth,
		columns: `
	upstream             text        NOT NULL,
	status               text        NOT NULL,
	last_ok_at           timestamptz,
	last_error           text,
	consecutive_failures integer     NOT NULL DEFAULT 0,
	checked_at           timestamptz,
	src_topic            text        NOT NULL,
	src_partition        integer     NOT NULL,
	src_offset           bigint      NOT NULL,
	PRIMARY KEY (upstream)`,
		conflict:  "(upstream)",
		dumpOrder: "upstream",
	},
}

// catalogue tables: small, written rarely or once, referenced by the
// projection tables. Reference tables in Citus.
const catalogueDDL = `
CREATE TABLE IF NOT EXISTS outcome_codes (
	outcome     text PRIMARY KEY,
	description text NOT NULL
);
INSERT INTO outcome_codes VALUES
	('ok', 'the tool returned a result'),
	('tool_error', 'the tool returned a result with isError (the model sees the failure)'),
	('error', 'a JSON-RPC error: unknown tool, bad arguments, internal error')
ON CONFLICT (outcome) DO NOTHING;
CREATE TABLE IF NOT EXISTS projection_offsets (
	consumer    text        NOT NULL,
	topic       text        NOT NULL,
	partition   integer     NOT NULL,
	next_offset bigint      NOT NULL,
	updated_at  timestamptz NOT NULL,
	PRIMARY KEY (consumer, topic, partition)
);
CREATE TABLE IF NOT EXISTS replay_runs (
	projection    text        PRIMARY KEY,
	generation    text        NOT NULL,
	from_spec     text        NOT NULL,
	start_offsets jsonb       NOT NULL,
	state         text        NOT NULL,
	started_at    timestamptz NOT NULL,
	updated_at    timestamptz NOT NULL
);`

// TableName is the physical name of a projection's table for a generation
// ("" for the live table).
func TableName(projection, gen string) string { return tableName(projection, gen) }

// tableName is the physical name of a projection's table: the live one for
// an empty generation, a rebuild's otherwise.
func tableName(projection, gen string) string {
	if gen == "" {
		return projection
	}
	return projection + "__" + gen
}

// ConsumerName is the consumer column of projection_offsets for a
// projection's table set (gen "" for live).
func ConsumerName(projection, gen string) string { return consumerName(projection, gen) }

// consumerName is the offsets key of a projection's table set.
func consumerName(projection, gen string) string { return tableName(projection, gen) }

// createTable returns the statements creating spec's table under name in
// layout.
func createTable(spec tableSpec, name string, layout Layout, partitions int) []string {
	var out []string
	// Rows are updated in place a few times each (session states, a
	// call's result after its job) without changing indexed values: free
	// room in each page lets those be HOT updates, which touch no index.
	storage := ""
	if spec.fillfactor != 0 {
		storage = fmt.Sprintf(" WITH (fillfactor = %d)", spec.fillfactor)
	}
	create := "CREATE TABLE " + name + " (" + spec.columns + "\n)"
	if spec.key != "" && layout == LayoutNative {
		create += " PARTITION BY HASH (" + spec.key + ")"
	} else {
		create += storage
	}
	out = append(out, create)
	if spec.key != "" && layout == LayoutNative {
		for i := 0; i < partitions; i++ {
			out = append(out, fmt.Sprintf("CREATE TABLE %s_p%d PARTITION OF %s FOR VALUES WITH (MODULUS %d, REMAINDER %d)%s",
				name, i, name, partitions, i, storage))
		}
	}
	for _, idx := range spec.indexes {
		out = append(out, "CREATE INDEX ON "+name+" "+idx)
	}
	if layout == LayoutCitus {
		out = append(out, citusDistribute(spec, name)...)
	}
	return out
}

// citusDistribute is the Citus half of the schema: sharded tables are
// distributed by their key, session-keyed ones co-located with sessions so
// joins on session_id stay on one node; catalogues are replicated to every
// node as reference tables.
func citusDistribute(spec tableSpec, name string) []string {
	if spec.key == "" {
		return []string{fmt.Sprintf("SELECT create_reference_table('%s')", name)}
	}
	colocate := "default"
	if spec.colocate != "" && spec.colocate != spec.name {
		colocate = spec.colocate
	} else if spec.name != Sessions && spec.key == "session_id" {
		colocate = Sessions
	}
	if name != spec.name && colocate == "default" {
		// A rebuild's table goes where the live one is, so the swap moves
		// no shard.
		colocate = spec.name
	}
	return []string{fmt.Sprintf("SELECT create_distributed_table('%s', '%s', colocate_with => '%s')", name, spec.key, colocate)}
}

// migration is one versioned schema step. Steps are never edited once
// shipped: a change is a new step.
type migration struct {
	version int
	name    string
	stmts   func(layout Layout, partitions int) []string
}

var migrations = []migration{
	{1, "projection tables, catalogues, offsets, replay checkpoints", func(layout Layout, partitions int) []string {
		var out []string
		if layout == LayoutCitus {
			out = append(out, "CREATE EXTENSION IF NOT EXISTS citus")
		}
		out = append(out, splitSQL(catalogueDDL)...)
		if layout == LayoutCitus {
			for _, t := range []string{"outcome_codes", "projection_offsets", "replay_runs"} {
				out = append(out, fmt.Sprintf("SELECT create_reference_table('%s')", t))
			}
		}
		for _, p := range []string{Sessions, ToolCalls, Tasks, UpstreamHealth} {
			out = append(out, createTable(specs[p], p, layout, partitions)...)
		}
		return out
	}},
}

func splitSQL(s string) []string {
	var out []string
	for _, st := range strings.Split(s, ";") {
		if st = strings.TrimSpace(st); st != "" {
			out = append(out, st)
		}
	}
	return out
}

// ErrLayoutMismatch is returned when a database was migrated with another
// layout or partition count than configured: rows would not be where the
// configuration says.
var ErrLayoutMismatch = errors.New("projection database has another layout")

// migrationLock serialises migrations of several projector instances
// starting at once (any constant shared by all of them).
const migrationLock = 0x6d637073 // "mcps"

// migrate brings the database to the latest schema version. It returns the
// layout in force.
func migrate(ctx context.Context, pool *pgxpool.Pool, want Layout, partitions int) (Layout, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return "", fmt.Errorf("acquiring connection for migrations: %w", err)
	}
	defer conn.Release()
	// A session-level lock: Citus functions may not run inside a
	// transaction that has already written, so each step gets its own
	// transaction under this one lock.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return "", fmt.Errorf("taking migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock) //nolint:errcheck
	for _, s := range []string{
		`CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE IF NOT EXISTS projection_meta (key text PRIMARY KEY, value text NOT NULL)`,
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return "", fmt.Errorf("creating migration tables: %w", err)
		}
	}
	layout, err := settleLayout(ctx, conn.Conn(), want, partitions)
	if err != nil {
		return "", err
	}
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return "", fmt.Errorf("reading schema_migrations: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return "", fmt.Errorf("reading schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	for _, v := range done {
		applied[int(v)] = true
	}
	for _, m := range migrations {
		if applied[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, s := range m.stmts(layout, partitions) {
				if _, err := tx.Exec(ctx, s); err != nil {
					return fmt.Errorf("%s: %w", firstLine(s), err)
				}
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return "", fmt.Errorf("applying migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return layout, nil
}

// settleLayout decides the layout and records it on first use.
func settleLayout(ctx context.Context, conn *pgx.Conn, want Layout, partitions int) (Layout, error) {
	var stored, storedParts string
	err := conn.QueryRow(ctx, `SELECT coalesce(max(value) FILTER (WHERE key = 'layout'), ''),
		coalesce(max(value) FILTER (WHERE key = 'partitions'), '') FROM projection_meta`).Scan(&stored, &storedParts)
	if err != nil {
		return "", fmt.Errorf("reading projection_meta: %w", err)
	}
	if stored != "" {
		if want != LayoutAuto && Layout(stored) != want {
			return "", fmt.Errorf("database has layout %s, configured %s: %w", stored, want, ErrLayoutMismatch)
		}
		if Layout(stored) == LayoutNative && storedParts != fmt.Sprint(partitions) && partitions != 0 {
			return "", fmt.Errorf("database has %s hash partitions, configured %d: %w", storedParts, partitions, ErrLayoutMismatch)
		}
		return Layout(stored), nil
	}
	layout := want
	if layout == LayoutAuto {
		var citus bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')").Scan(&citus); err != nil {
			return "", fmt.Errorf("detecting citus: %w", err)
		}
		layout = LayoutNative
		if citus {
			layout = LayoutCitus
		}
	}
	_, err = conn.Exec(ctx, `INSERT INTO projection_meta VALUES ('layout', $1), ('partitions', $2) ON CONFLICT (key) DO NOTHING`,
		string(layout), fmt.Sprint(partitions))
	if err != nil {
		return "", fmt.Errorf("recording layout: %w", err)
	}
	return layout, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}
