package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Position is where a record sits in the log.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// SessionRow is the latest SessionState of one session in a batch. A
// tombstone sets Deleted: the row is kept, marked deleted, so its position
// still guards against older records. A bare tombstone has an empty State
// and no data; one that follows a state in the batch keeps that state's
// data.
type SessionRow struct {
	SessionID          string
	Principal          string
	State              string
	ProtocolVersion    string
	ClientInfo         []byte // JSON, or nil
	ClientCapabilities []byte // JSON, or nil
	LogLevel           string
	CreatedAt          time.Time
	LastActivity       time.Time
	Requests           int64
	LastRequestOffset  int64
	Deleted            bool
	Pos                Position
}

// JobPart is what a ToolJob says about a call.
type JobPart struct {
	SessionID  string
	Principal  string
	Tool       string
	ArgsSHA256 []byte // nil when the call had no arguments
	AcceptedAt time.Time
	Pos        Position
}

// Outcomes of a tool call (the outcome_codes catalogue).
const (
	OutcomeOK        = "ok"
	OutcomeToolError = "tool_error"
	OutcomeError     = "error"
)

// ResultPart is what a ToolResult says about a call.
type ResultPart struct {
	Executor   string
	StartedAt  time.Time
	FinishedAt time.Time
	Outcome    string
	ErrorCode  *int32 // the JSON-RPC error code when Outcome is OutcomeError
	Pos        Position
}

// CallRow is one tool call's halves in a batch: the lowest-offset job and
// the lowest-offset result among the batch's records for the event id.
type CallRow struct {
	EventID string
	Job     *JobPart
	Result  *ResultPart
}

// Offset is a consumer's next offset in one partition: every record below
// it has been applied.
type Offset struct {
	Consumer  string
	Topic     string
	Partition int32
	Next      int64
}

// Batch is what one transaction writes: at most one row per key (rows are
// merged in Go; ON CONFLICT cannot touch a row twice in one statement) and
// the offsets they advance.
type Batch struct {
	// Gen selects the table set: "" for the live tables, a rebuild's
	// generation for its fresh tables.
	Gen      string
	Sessions []SessionRow
	Calls    []CallRow
	Offsets  []Offset
	// Events is the number of records the batch covers (rows are merged,
	// so it is at least the number of rows).
	Events int
}

// SplitByPartition divides the batch into n batches by Kafka partition
// number (partition mod n), rows and offsets alike; empty parts are left
// out. Every record of a key is in one partition number, so the parts
// touch disjoint rows.
func (b *Batch) SplitByPartition(n int) []*Batch {
	parts := make([]*Batch, n)
	for i := range parts {
		parts[i] = &Batch{Gen: b.Gen}
	}
	at := func(p int32) *Batch { return parts[int(p)%n] }
	for _, s := range b.Sessions {
		p := at(s.Pos.Partition)
		p.Sessions = append(p.Sessions, s)
		p.Events++
	}
	for _, c := range b.Calls {
		pos := Position{}
		if c.Job != nil {
			pos = c.Job.Pos
		} else if c.Result != nil {
			pos = c.Result.Pos
		}
		p := at(pos.Partition)
		p.Calls = append(p.Calls, c)
		p.Events++
	}
	for _, o := range b.Offsets {
		p := at(o.Partition)
		p.Offsets = append(p.Offsets, o)
	}
	out := parts[:0]
	for _, p := range parts {
		if !p.Empty() {
			out = append(out, p)
		}
	}
	return out
}

// Empty reports whether the batch writes nothing at all.
func (b *Batch) Empty() bool { return len(b.Sessions) == 0 && len(b.Calls) == 0 && len(b.Offsets) == 0 }

// Run is an unfinished rebuild of one projection.
type Run struct {
	Projection string
	Generation string
	From       string // "earliest" or an RFC 3339 time
	Start      map[TopicPartition]int64
	State      string // RunBuilding
	StartedAt  time.Time
}

// RunBuilding is the state of a rebuild that has not swapped yet.
const RunBuilding = "building"

// ErrBehind is returned by Swap when the live projector has applied records
// the rebuild has not: swapping now would lose them from the new tables.
// Need says how far the rebuild must get first.
type ErrBehind struct {
	Need map[TopicPartition]int64
}

func (e *ErrBehind) Error() string {
	return fmt.Sprintf("rebuild is behind the live projection in %d partitions", len(e.Need))
}

// ErrNoRun is returned for a generation with no unfinished rebuild.
var ErrNoRun = errors.New("no such unfinished rebuild")

// Store is where projections live: one database (PG) or several (Router).
// Every method is safe for concurrent use.
type Store interface {
	// Migrate creates or upgrades the schema; New and the replay tool call
	// it before anything else.
	Migrate(ctx context.Context) error
	// Offsets returns the next offset per partition of a projection's
	// table set (gen "" for live). A missing partition starts at the
	// beginning of the log.
	Offsets(ctx context.Context, projection, gen string) (map[TopicPartition]int64, error)
	// Apply writes a batch's rows and offsets atomically (per database for
	// a Router: each database's rows with its own offsets).
	Apply(ctx context.Context, b *Batch) error
	// BeginRebuild creates fresh tables for each projection under gen,
	// records the run and its start offsets. It is idempotent for the
	// same gen.
	BeginRebuild(ctx context.Context, runs []Run) error
	// Runs lists unfinished rebuilds.
	Runs(ctx context.Context) ([]Run, error)
	// Swap makes a rebuild's tables and offsets the live ones in one
	// transaction (per database) and drops the old tables. It returns
	// *ErrBehind, changing nothing, when the live offsets are ahead.
	Swap(ctx context.Context, projections []string, gen string) error
	// AbortRebuild drops a rebuild's tables and run records.
	AbortRebuild(ctx context.Context, projections []string, gen string) error
	// Dump returns every row of a projection table set as text, one line
	// per row ordered by key: for comparing a rebuild with the live tables.
	Dump(ctx context.Context, projection, gen string) ([]string, error)
	// Close releases connections.
	Close()
}

// StoreConfig says where projections are stored.
type StoreConfig struct {
	// DSNs: one PostgreSQL connection string for a single database, several
	// for a Router over that many databases. Required.
	DSNs []string
	// Layout of each database; LayoutAuto (zero) picks Citus when installed,
	// native hash partitioning otherwise. A Router's shards default to
	// LayoutPlain.
	Layout Layout
	// Partitions is the number of hash partitions in LayoutNative. Zero
	// means 8. Fixed once a database is migrated.
	Partitions int
	// MaxConns per database. Zero means 4: Parallel writers, and the rest
	// for Dump and admin.
	MaxConns int32
	// Parallel splits each large batch into this many transactions on
	// separate connections, by Kafka partition number: a key's records are
	// all in one partition number (sessions by session id; a call's job and
	// result in the same-numbered partition of two co-partitioned topics),
	// so the transactions touch disjoint rows, and each carries the offsets
	// of its own partitions, so each is exactly-once on its own. It lets
	// PostgreSQL use more than one core for one projector. Zero means 2 for
	// one database and 1 per shard behind a Router (the shards already
	// write in parallel); 1 writes every batch in one transaction.
	Parallel int
	// SplitRows is the smallest batch (in rows) that Parallel splits.
	// Zero means 2,000: below that one transaction is cheaper.
	SplitRows int
	// SynchronousCommit off (the zero value false keeps PostgreSQL's
	// default, on) lets commits return before the WAL is flushed. Safe
	// for exactly-once: rows and offsets share a transaction, so a
	// database crash loses both together and the projector re-reads them
	// from the log.
	AsyncCommit bool
	Logger      *slog.Logger
	// BeforeCommit, when set, runs inside every Apply transaction after its
	// writes and before COMMIT; an error (or a context cancelled meanwhile)
	// rolls the transaction back. Fault injection for tests: leave nil.
	BeforeCommit func(ctx context.Context, b *Batch) error
}

func (c StoreConfig) withDefaults() StoreConfig {
	if c.Partitions == 0 {
		c.Partitions = 8
	}
	if c.MaxConns == 0 {
		c.MaxConns = 4
	}
	if c.Parallel <= 0 {
		c.Parallel = 2
	}
	if c.SplitRows <= 0 {
		c.SplitRows = 2000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// CreateDatabase creates the database a DSN names if it does not exist,
// connecting to the server's "postgres" database to do so: `mcpstream run`
// can then point at a fresh server.
func CreateDatabase(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("parsing projections DSN: %w", err)
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting to create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("looking for database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile
			return nil
		}
		return fmt.Errorf("creating database %s: %w", name, err)
	}
	return nil
}

// Open connects to the configured databases and migrates them. One DSN
// gives a PG store, several a Router.
func Open(ctx context.Context, cfg StoreConfig) (Store, error) {
	cfg = cfg.withDefaults()
	switch len(cfg.DSNs) {
	case 0:
		return nil, errors.New("projections store: no DSN")
	case 1:
		s, err := OpenPG(ctx, cfg.DSNs[0], cfg)
		if err != nil {
			return nil, err
		}
		if err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	default:
		r, err := OpenRouter(ctx, cfg)
		if err != nil {
			return nil, err
		}
		if err := r.Migrate(ctx); err != nil {
			r.Close()
			return nil, err
		}
		return r, nil
	}
}
