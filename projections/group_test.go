package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/projections/projectionstest"
	"github.com/mcpstream/mcpstream/schemas"
)

// Two projector instances in one consumer group share the partitions and
// together project everything once.
func TestProjectorsShareTheGroup(t *testing.T) {
	reg := schemas.MustLoad()
	l := projectionstest.NewLog(t, 4)
	st, err := projections.Open(context.Background(), projections.StoreConfig{DSNs: []string{projectionstest.NewDatabase(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var applied [2]countingMetrics
	var runs []*projectionstest.Running
	for i := range applied {
		runs = append(runs, projectionstest.StartWithDeps(t, context.Background(), st, l,
			projections.Config{Group: "shared-group", ClientID: "p" + string(rune('a'+i)), BatchSize: 50}, &applied[i]))
	}
	// Produce once both members hold partitions.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		groups, err := l.Adm.DescribeGroups(ctx, "shared-group")
		if err != nil {
			t.Fatal(err)
		}
		g := groups["shared-group"]
		assigned := 0
		for _, m := range g.Members {
			if ca, ok := m.Assigned.AsConsumer(); ok && len(ca.Topics) > 0 {
				assigned++
			}
		}
		if g.State == "Stable" && assigned == 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the group never had two members with partitions: %+v", g)
		case <-time.After(50 * time.Millisecond):
		}
	}
	recs := projectionstest.Workload{Sessions: 60, Seed: "group"}.Records(t, l.Streams.Topics, reg)
	l.Produce(t, recs)
	projectionstest.WaitCaughtUp(t, st, l, "", 60*time.Second)
	for _, r := range runs {
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	projectionstest.Check(t, st, "", reg, l.Streams.Topics, recs, nil)
	if applied[0].events.Load() == 0 || applied[1].events.Load() == 0 {
		t.Errorf("one instance did all the work: %d and %d events", applied[0].events.Load(), applied[1].events.Load())
	}
}
