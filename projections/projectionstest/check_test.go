package projectionstest

import (
	"context"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A batch that commits while Check is reading (between a database's
// offsets and its rows, as a SIGKILLed projector's last COMMIT can, the
// server finishing it after the client died) is not half seen: Check
// reads one snapshot. Reading the offsets and the rows in separate
// statements fails this test (the second half's rows without its
// offsets).
func TestCheckSeesOneSnapshot(t *testing.T) {
	reg := schemas.MustLoad()
	topics := streams.Config{}.WithDefaults().Topics
	recs := Workload{Sessions: 30, CallsPerSession: 4, Seed: "snapshot"}.Records(t, topics, reg)
	// Positions as a one-partition log would give them: Check and the
	// decoder need nothing else from a broker.
	next := map[string]int64{}
	for _, r := range recs {
		r.Partition, r.Offset = 0, next[r.Topic]
		next[r.Topic]++
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := projections.Open(ctx, projections.StoreConfig{DSNs: []string{NewDatabase(t)}, Layout: projections.LayoutPlain})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dec, err := projections.NewDecoder(reg, topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(part []*kgo.Record) {
		b, rejects := dec.Decode(part, "")
		if len(rejects) > 0 {
			t.Fatalf("rejected: %v", rejects[0].Err)
		}
		if err := st.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	half := len(recs) / 2
	apply(recs[:half])

	injected := 0
	checkHook = func(*projections.PG) {
		if injected == 0 {
			apply(recs[half:])
		}
		injected++
	}
	defer func() { checkHook = nil }()
	first := Check(t, st, "", reg, topics, recs, nil)
	if injected == 0 {
		t.Fatal("the hook did not run: the test proves nothing")
	}
	// The commit did happen: a fresh Check sees more rows.
	if all := Check(t, st, "", reg, topics, recs, nil); all <= first {
		t.Fatalf("the injected batch added no rows (%d, then %d): the test proves nothing", first, all)
	}
}
