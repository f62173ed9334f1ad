package projectionstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/ops/replay"
	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Backend is one way of storing the projections.
type Backend struct {
	Name string
	// Unavailable says why the backend cannot run on this machine ("" when
	// it can). The suite then skips, reported as not run.
	Unavailable func(t testing.TB) string
	// Config creates the backend's databases for one test.
	Config func(t testing.TB) projections.StoreConfig
}

// Native is one database with PARTITION BY HASH (4 partitions), every
// batch split over two transactions (StoreConfig.Parallel).
func Native() Backend {
	return Backend{Name: "native", Unavailable: func(testing.TB) string { return "" },
		Config: func(t testing.TB) projections.StoreConfig {
			return projections.StoreConfig{DSNs: []string{NewDatabase(t)}, Layout: projections.LayoutNative, Partitions: 4,
				Parallel: 2, SplitRows: 1}
		}}
}

// Router is n databases behind the consistent-hash router.
func Router(n int) Backend {
	return Backend{Name: fmt.Sprintf("router%d", n), Unavailable: func(testing.TB) string { return "" },
		Config: func(t testing.TB) projections.StoreConfig {
			cfg := projections.StoreConfig{Layout: projections.LayoutPlain, MaxConns: 2}
			for i := 0; i < n; i++ {
				cfg.DSNs = append(cfg.DSNs, NewDatabase(t))
			}
			return cfg
		}}
}

// Citus is one database with the citus extension; unavailable where the
// extension is not installed (it is not in Debian).
func Citus() Backend {
	return Backend{Name: "citus",
		Unavailable: func(t testing.TB) string {
			if CitusAvailable(t) {
				return ""
			}
			return "citus extension not installed on the test PostgreSQL: Citus layout NOT RUN"
		},
		Config: func(t testing.TB) projections.StoreConfig {
			return projections.StoreConfig{DSNs: []string{NewDatabase(t)}, Layout: projections.LayoutCitus}
		}}
}

// Backends are every backend the suite runs against.
func Backends() []Backend { return []Backend{Native(), Router(3), Citus()} }

func openStore(t testing.TB, cfg projections.StoreConfig) projections.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := projections.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Running is a projector started by Start.
type Running struct {
	cancel context.CancelFunc
	done   chan error
}

// Stop cancels the projector and returns Run's error.
func (r *Running) Stop() error {
	r.cancel()
	return <-r.done
}

// Done is closed with Run's error when the projector returns by itself.
func (r *Running) Done() <-chan error { return r.done }

// Start runs a projector on st in the background (its own consumer group:
// positions come from the store, and a group shared with a killed process
// would wait out its session timeout).
func Start(t testing.TB, st projections.Store, l *Log, batch int) *Running {
	t.Helper()
	return StartWith(t, context.Background(), st, l, projections.Config{BatchSize: batch})
}

// StartWith is Start with a parent context and a config (Streams and
// Group are filled in).
func StartWith(t testing.TB, parent context.Context, st projections.Store, l *Log, cfg projections.Config) *Running {
	t.Helper()
	return StartWithDeps(t, parent, st, l, cfg, nil)
}

// StartWithDeps is StartWith with metrics.
func StartWithDeps(t testing.TB, parent context.Context, st projections.Store, l *Log, cfg projections.Config, m projections.Metrics) *Running {
	t.Helper()
	cfg.Streams = l.Streams
	if cfg.Group == "" {
		cfg.Group = uniqueName("projector")
	}
	if cfg.ClientID == "" {
		cfg.ClientID = cfg.Group
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = 10 * time.Millisecond
	}
	p, err := projections.New(projections.Deps{Store: st, Schemas: schemas.MustLoad(), Logger: testLogger(t), Metrics: m}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(parent)
	r := &Running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	return r
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func dumpAll(t testing.TB, st projections.Store, gen string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	for _, p := range projections.Live {
		rows, err := st.Dump(ctx, p, gen)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			out = append(out, p+" "+r)
		}
	}
	return out
}

func sameDump(t testing.TB, what string, a, b []string) {
	t.Helper()
	if slices.Equal(a, b) {
		return
	}
	n := 0
	for i := 0; i < max(len(a), len(b)) && n < 5; i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			t.Errorf("%s: line %d differs:\n  %s\n  %s", what, i, x, y)
			n++
		}
	}
	t.Errorf("%s: tables differ (%d vs %d rows)", what, len(a), len(b))
}

// execAll runs a statement on every database of st (test manipulation of
// offsets).
func execAll(t testing.TB, st projections.Store, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, sh := range shardsOf(t, st) {
		if _, err := sh.pg.Pool().Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
}

// RunSuite runs the projection suite against b. A package that runs it
// calls RunChildIfAsked from TestMain (the kill test re-executes the test
// binary as the projector it kills).
func RunSuite(t *testing.T, b Backend) {
	if why := b.Unavailable(t); why != "" {
		t.Skip(why)
	}
	reg := schemas.MustLoad()
	t.Run("IdempotentReplay", func(t *testing.T) { t.Parallel(); testIdempotentReplay(t, b, reg) })
	t.Run("CheckpointAtomicityFaults", func(t *testing.T) { t.Parallel(); testFaults(t, b, reg) })
	t.Run("CheckpointAtomicityKill9", func(t *testing.T) { t.Parallel(); testKill(t, b, reg) })
	t.Run("OutOfOrderAndDuplicates", func(t *testing.T) { t.Parallel(); testOutOfOrder(t, b, reg) })
	t.Run("RebuildEqualsLive", func(t *testing.T) { t.Parallel(); testRebuild(t, b, reg) })
}

// Replaying the same topics twice, with different batch sizes, gives the
// same tables, and those are the model's.
func testIdempotentReplay(t *testing.T, b Backend, reg *schemas.Registry) {
	l := NewLog(t, 4)
	recs := Workload{Sessions: 80, CallsPerSession: 5, Seed: "idem"}.Records(t, l.Streams.Topics, reg)
	l.Produce(t, recs)
	st := openStore(t, b.Config(t))

	r := Start(t, st, l, 1000)
	WaitCaughtUp(t, st, l, "", 30*time.Second)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := Check(t, st, "", reg, l.Streams.Topics, recs, nil); n == 0 {
		t.Fatal("nothing projected")
	}
	first := dumpAll(t, st, "")

	// Forget every position: the same records are applied again, in
	// other batches.
	execAll(t, st, "DELETE FROM projection_offsets")
	r = Start(t, st, l, 13)
	WaitCaughtUp(t, st, l, "", 30*time.Second)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	sameDump(t, "after replaying the topics again", first, dumpAll(t, st, ""))
	Check(t, st, "", reg, l.Streams.Topics, recs, nil)
}

var errInjected = errors.New("injected failure before commit")

// Transactions fail after their writes (injected), and the projector is
// stopped in the middle of batches: at every stop the rows are exactly
// the model of the records below the committed offsets, and at the end
// everything is there once.
func testFaults(t *testing.T, b Backend, reg *schemas.Registry) {
	l := NewLog(t, 4)
	recs := Workload{Sessions: 80, CallsPerSession: 5, Seed: "faults"}.Records(t, l.Streams.Topics, reg)
	l.Produce(t, recs)
	cfg := b.Config(t)
	var calls, injected, cancelled atomic.Int64
	var stop atomic.Pointer[context.CancelFunc]
	cfg.BeforeCommit = func(ctx context.Context, _ *projections.Batch) error {
		switch n := calls.Add(1); {
		case n%7 == 0:
			// Stop the projector while this transaction is open.
			cancelled.Add(1)
			(*stop.Load())()
			<-ctx.Done()
			return ctx.Err()
		case n%3 == 0:
			injected.Add(1)
			return errInjected
		}
		return nil
	}
	st := openStore(t, cfg)
	restarts := 0
	for ; restarts < 100; restarts++ {
		ctx, cancel := context.WithCancel(context.Background())
		stop.Store(&cancel)
		r := StartWith(t, ctx, st, l, projections.Config{BatchSize: 50})
		finished := false
		for deadline := time.Now().Add(30 * time.Second); ; {
			select {
			case err := <-r.Done():
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(20 * time.Millisecond):
				if ok, _ := CaughtUp(t, st, l, ""); ok {
					finished = true
					if err := r.Stop(); err != nil {
						t.Fatal(err)
					}
				} else if time.Now().Before(deadline) {
					continue
				} else {
					t.Fatal("projector neither stopped nor caught up")
				}
			}
			break
		}
		cancel()
		// The moment of truth: rows match the committed offsets.
		Check(t, st, "", reg, l.Streams.Topics, recs, nil)
		if t.Failed() || finished {
			break
		}
	}
	t.Logf("%d restarts, %d transactions failed, %d cancelled mid-transaction", restarts, injected.Load(), cancelled.Load())
	if injected.Load() < 3 || cancelled.Load() < 3 {
		t.Fatalf("the faults did not happen (%d failed, %d cancelled): the test proves nothing", injected.Load(), cancelled.Load())
	}
}

const childEnv = "MCPSTREAM_PROJECTIONSTEST_CHILD"

type childConfig struct {
	DSNs       []string
	Layout     projections.Layout
	Partitions int
	Parallel   int
	SplitRows  int
	Streams    streams.Config
	Group      string
	Batch      int
	Slow       time.Duration
}

// RunChildIfAsked turns the test binary into a projector when the kill
// test started it as one; it never returns then.
func RunChildIfAsked() {
	v := os.Getenv(childEnv)
	if v == "" {
		return
	}
	var cc childConfig
	if err := json.Unmarshal([]byte(v), &cc); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		os.Exit(2)
	}
	store := projections.StoreConfig{DSNs: cc.DSNs, Layout: cc.Layout, Partitions: cc.Partitions, Parallel: cc.Parallel,
		SplitRows: cc.SplitRows, MaxConns: 3}
	if cc.Slow > 0 {
		store.BeforeCommit = func(ctx context.Context, _ *projections.Batch) error {
			// Hold each transaction open for a while, so a kill lands in
			// one more often than not.
			select {
			case <-time.After(cc.Slow):
			case <-ctx.Done():
			}
			return ctx.Err()
		}
	}
	ctx := context.Background()
	st, err := projections.Open(ctx, store)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child store:", err)
		os.Exit(2)
	}
	p, err := projections.New(projections.Deps{Store: st, Schemas: schemas.MustLoad()},
		projections.Config{Streams: cc.Streams, Group: cc.Group, ClientID: cc.Group, BatchSize: cc.Batch})
	if err == nil {
		err = p.Run(ctx)
	}
	fmt.Fprintln(os.Stderr, "child projector:", err)
	os.Exit(1)
}

// A projector process is SIGKILLed mid-run, twice; each time the rows
// match the committed offsets; a new projector then finishes the job.
func testKill(t *testing.T, b Backend, reg *schemas.Registry) {
	l := NewLog(t, 4)
	recs := Workload{Sessions: 150, CallsPerSession: 4, Seed: "kill"}.Records(t, l.Streams.Topics, reg)
	l.Produce(t, recs)
	cfg := b.Config(t)
	st := openStore(t, cfg)
	var total int64
	{
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ends, err := l.Adm.ListEndOffsets(ctx, l.Streams.Topics.ToolCalls(), l.Streams.Topics.ToolResults(), streams.Table(l.Streams.Topics.SessionsGroup()))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	}
	kills := 0
	for round := 1; round <= 2; round++ {
		cc, err := json.Marshal(childConfig{DSNs: cfg.DSNs, Layout: cfg.Layout, Partitions: cfg.Partitions,
			Parallel: cfg.Parallel, SplitRows: cfg.SplitRows,
			Streams: l.Streams, Group: uniqueName("child"), Batch: 40, Slow: 15 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(cc))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		want := total * int64(round) / 3
		deadline := time.Now().Add(30 * time.Second)
		for Offsets(t, st, "") < want {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("child made no progress past %d of %d; its stderr:\n%s", Offsets(t, st, ""), total, stderr.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Signal(os.Kill); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		at := Offsets(t, st, "")
		if at >= total {
			t.Fatalf("round %d: the child finished before the kill (%d of %d): the test proves nothing", round, at, total)
		}
		kills++
		t.Logf("round %d: SIGKILL at %d of %d offsets", round, at, total)
		Check(t, st, "", reg, l.Streams.Topics, recs, nil)
	}
	r := Start(t, st, l, 500)
	WaitCaughtUp(t, st, l, "", 30*time.Second)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	Check(t, st, "", reg, l.Streams.Topics, recs, nil)
	if kills != 2 {
		t.Fatalf("%d kills", kills)
	}
}

// Results before jobs, duplicate jobs and results, tombstones (all in the
// workload), batches of 7 that split them, then old records delivered again
// after newer ones were applied: no row moves backwards.
func testOutOfOrder(t *testing.T, b Backend, reg *schemas.Registry) {
	l := NewLog(t, 4)
	recs := Workload{Sessions: 60, CallsPerSession: 6, Seed: "ooo"}.Records(t, l.Streams.Topics, reg)
	l.Produce(t, recs)
	st := openStore(t, b.Config(t))
	r := Start(t, st, l, 7)
	WaitCaughtUp(t, st, l, "", 60*time.Second)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	Check(t, st, "", reg, l.Streams.Topics, recs, nil)
	before := dumpAll(t, st, "")

	// Every old record once more, straight through Apply: older positions
	// than the rows hold.
	dec, err := projections.NewDecoder(reg, l.Streams.Topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < len(recs); i += 97 {
		chunk := recs[i:min(i+97, len(recs))]
		batch, rejects := dec.Decode(chunk, "")
		if len(rejects) > 0 {
			t.Fatalf("rejected: %v", rejects[0].Err)
		}
		batch.Offsets = nil // not moving positions: just old rows arriving late
		if err := st.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	sameDump(t, "after re-applying every record", before, dumpAll(t, st, ""))

	// The projector re-delivered from older offsets in half the
	// partitions: still nothing moves.
	execAll(t, st, "UPDATE projection_offsets SET next_offset = next_offset / 2 WHERE partition % 2 = 0")
	r = Start(t, st, l, 7)
	WaitCaughtUp(t, st, l, "", 60*time.Second)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	sameDump(t, "after rewinding half the partitions", before, dumpAll(t, st, ""))
	Check(t, st, "", reg, l.Streams.Topics, recs, nil)
}

// A rebuild from offset 0, interrupted and resumed, equals the live tables
// built by a projector that is running all along; after the swap the live
// projector keeps writing into the new tables.
func testRebuild(t *testing.T, b Backend, reg *schemas.Registry) {
	l := NewLog(t, 4)
	topics := l.Streams.Topics
	recsA := Workload{Sessions: 60, CallsPerSession: 5, Seed: "rebuild-a"}.Records(t, topics, reg)
	l.Produce(t, recsA)
	st := openStore(t, b.Config(t))
	live := Start(t, st, l, 200)
	defer func() {
		if err := live.Stop(); err != nil {
			t.Error(err)
		}
	}()
	WaitCaughtUp(t, st, l, "", 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out strings.Builder
	rcfg := replay.Config{Streams: l.Streams, BatchSize: 100, Out: &out, Every: time.Millisecond, Logger: testLogger(t),
		Stop: func(done int64) bool { return done > 300 }}
	res, err := replay.Run(ctx, st, reg, rcfg)
	if !errors.Is(err, replay.ErrStopped) {
		t.Fatalf("interrupted replay: %v", err)
	}
	gen := res.Generation
	// The interrupted rebuild is consistent with its checkpoint.
	Check(t, st, gen, reg, topics, recsA, nil)

	rcfg.Stop, rcfg.NoSwap = nil, true
	res, err = replay.Run(ctx, st, reg, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.Generation != gen {
		t.Fatalf("second run did not resume %s: %+v", gen, res)
	}
	sameDump(t, "rebuild vs live", dumpAll(t, st, ""), dumpAll(t, st, gen))
	Check(t, st, gen, reg, topics, recsA, nil)

	// More traffic while the live projector runs: the swap must wait for
	// the rebuild to catch up with it.
	recsB := Workload{Sessions: 40, CallsPerSession: 5, Seed: "rebuild-b"}.Records(t, topics, reg)
	l.Produce(t, recsB)
	WaitCaughtUp(t, st, l, "", 30*time.Second)
	rcfg.NoSwap = false
	res, err = replay.Run(ctx, st, reg, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Swapped {
		t.Fatalf("not swapped: %+v", res)
	}
	all := append(slices.Clone(recsA), recsB...)
	Check(t, st, "", reg, topics, all, nil)

	recsC := Workload{Sessions: 30, CallsPerSession: 5, Seed: "rebuild-c"}.Records(t, topics, reg)
	l.Produce(t, recsC)
	WaitCaughtUp(t, st, l, "", 30*time.Second)
	Check(t, st, "", reg, topics, append(all, recsC...), nil)
	if runs, err := st.Runs(ctx); err != nil || len(runs) != 0 {
		t.Fatalf("runs left after the swap: %v %v", runs, err)
	}
	for _, want := range []string{"events/s", "ETA", "swapped in"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("progress output lacks %q:\n%s", want, out.String())
		}
	}
}
