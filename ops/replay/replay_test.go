package replay_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/ops/replay"
	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/projections/projectionstest"
	"github.com/mcpstream/mcpstream/schemas"
)

func open(t *testing.T) projections.Store {
	t.Helper()
	st, err := projections.Open(context.Background(), projections.StoreConfig{DSNs: []string{projectionstest.NewDatabase(t)},
		Layout: projections.LayoutNative, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// A rebuild from a time holds exactly the records from then on.
func TestReplayFromTime(t *testing.T) {
	reg := schemas.MustLoad()
	l := projectionstest.NewLog(t, 4)
	recsA := projectionstest.Workload{Sessions: 30, Seed: "a"}.Records(t, l.Streams.Topics, reg)
	l.Produce(t, recsA)
	time.Sleep(20 * time.Millisecond)
	from := time.Now()
	time.Sleep(20 * time.Millisecond)
	recsB := projectionstest.Workload{Sessions: 30, Seed: "b"}.Records(t, l.Streams.Topics, reg)
	l.Produce(t, recsB)

	st := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out strings.Builder
	res, err := replay.Run(ctx, st, reg, replay.Config{Streams: l.Streams, From: from, NoSwap: true, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	runs, err := st.Runs(ctx)
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs = %v, %v", runs, err)
	}
	start := map[projections.TopicPartition]int64{}
	for _, r := range runs {
		for k, v := range r.Start {
			start[k] = v
		}
	}
	all := append(slices.Clone(recsA), recsB...)
	n := projectionstest.Check(t, st, res.Generation, reg, l.Streams.Topics, all, start)
	onlyB := projectionstest.Expect(t, reg, l.Streams.Topics, recsB, nil)
	if want := len(onlyB.Sessions) + len(onlyB.Calls); n != want {
		t.Errorf("rebuild from %s holds %d rows, want the %d of the second workload", from, n, want)
	}
	if int(res.Events) != len(recsB) {
		t.Errorf("replayed %d events, want %d", res.Events, len(recsB))
	}
	if !strings.Contains(out.String(), "from "+from.UTC().Format(time.RFC3339Nano)) {
		t.Errorf("output does not say where it started:\n%s", out.String())
	}
	if err := replay.Abort(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	if runs, _ := st.Runs(ctx); len(runs) != 0 {
		t.Fatalf("runs after abort: %v", runs)
	}
}

// The swap refuses while the live projection is ahead of the rebuild, and
// a resumed run catches up and swaps.
func TestSwapWaitsForTheLiveProjection(t *testing.T) {
	reg := schemas.MustLoad()
	l := projectionstest.NewLog(t, 4)
	recsA := projectionstest.Workload{Sessions: 30, Seed: "a"}.Records(t, l.Streams.Topics, reg)
	l.Produce(t, recsA)
	st := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := replay.Run(ctx, st, reg, replay.Config{Streams: l.Streams, NoSwap: true})
	if err != nil {
		t.Fatal(err)
	}
	recsB := projectionstest.Workload{Sessions: 30, Seed: "b"}.Records(t, l.Streams.Topics, reg)
	l.Produce(t, recsB)
	live := projectionstest.Start(t, st, l, 500)
	projectionstest.WaitCaughtUp(t, st, l, "", 30*time.Second)
	if err := live.Stop(); err != nil {
		t.Fatal(err)
	}
	err = st.Swap(ctx, projections.Live, res.Generation)
	var behind *projections.ErrBehind
	if !errors.As(err, &behind) || len(behind.Need) == 0 {
		t.Fatalf("swap with the live projection ahead: %v, want ErrBehind", err)
	}
	res2, err := replay.Run(ctx, st, reg, replay.Config{Streams: l.Streams})
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Resumed || !res2.Swapped || res2.Generation != res.Generation {
		t.Fatalf("resume: %+v", res2)
	}
	projectionstest.Check(t, st, "", reg, l.Streams.Topics, append(slices.Clone(recsA), recsB...), nil)
}
