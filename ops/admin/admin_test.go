package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/ops/admin"
	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/projections/projectionstest"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/twmb/franz-go/pkg/kadm"
)

func TestTopicsCreateAndDescribe(t *testing.T) {
	b, err := streams.NewBroker(streams.BrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := streams.Config{Brokers: b.Addrs(), Partitions: 6, Topics: streams.Topics{Prefix: "adm"}}.WithDefaults()
	cl, err := streams.NewClient(cfg, "admin-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	infos, err := admin.Topics(ctx, adm, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range infos {
		if i.Exists || !strings.Contains(i.Problem, "missing") {
			t.Errorf("before --create: %+v", i)
		}
	}
	infos, err = admin.Topics(ctx, adm, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(cfg.Topics.Specs()) {
		t.Fatalf("%d topics described, want %d", len(infos), len(cfg.Topics.Specs()))
	}
	for _, i := range infos {
		if !i.Exists || i.Partitions != 6 || i.Replication != 1 || i.Problem != "" {
			t.Errorf("after --create: %+v", i)
		}
		if i.Compacted != (i.Cleanup == "compact") {
			t.Errorf("%s: cleanup.policy %q, compacted %t", i.Name, i.Cleanup, i.Compacted)
		}
	}
	var out strings.Builder
	if err := admin.WriteTopics(&out, infos); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "adm-sessions-table") || !strings.Contains(out.String(), "compact") {
		t.Errorf("table:\n%s", out.String())
	}
	// The same names with another partition count are reported, not hidden.
	wrong := cfg
	wrong.Partitions = 3
	infos, err = admin.Topics(ctx, adm, wrong, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(infos[0].Problem, "6 partitions, configured 3") {
		t.Errorf("mismatch not reported: %+v", infos[0])
	}
}

func TestLag(t *testing.T) {
	reg := schemas.MustLoad()
	l := projectionstest.NewLog(t, 3)
	topics := l.Streams.Topics
	recs := projectionstest.Workload{Sessions: 20, Seed: "lag"}.Records(t, topics, reg)
	l.Produce(t, recs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The toolcalls group has consumed the first 2 records of partition 0.
	var off kadm.Offsets
	off.AddOffset(topics.ToolCalls(), 0, 2, -1)
	if _, err := l.Adm.CommitOffsets(ctx, topics.ToolCallsGroup(), off); err != nil {
		t.Fatal(err)
	}
	ends, err := l.Adm.ListEndOffsets(ctx, topics.ToolCalls())
	if err != nil {
		t.Fatal(err)
	}
	end0, _ := ends.Lookup(topics.ToolCalls(), 0)
	rows, err := admin.Lag(ctx, l.Adm, admin.Groups(topics)...)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		if r.Group == topics.ToolCallsGroup() && r.Topic == topics.ToolCalls() && r.Partition == 0 {
			found = true
			if r.Committed != 2 || r.Lag != end0.Offset-2 {
				t.Errorf("lag row %+v, want committed 2, lag %d", r, end0.Offset-2)
			}
		}
	}
	if !found {
		t.Fatalf("no lag row for the toolcalls group: %+v", rows)
	}

	st, err := projections.Open(ctx, projections.StoreConfig{DSNs: []string{projectionstest.NewDatabase(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pr, err := admin.ProjectorLag(ctx, l.Adm, st, topics)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, r := range pr {
		total += r.Lag
	}
	if total != int64(len(recs)) {
		t.Errorf("projector lag before it ran = %d, want every record (%d)", total, len(recs))
	}
	p := projectionstest.Start(t, st, l, 1000)
	projectionstest.WaitCaughtUp(t, st, l, "", 30*time.Second)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	pr, err = admin.ProjectorLag(ctx, l.Adm, st, topics)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range pr {
		if r.Lag != 0 {
			t.Errorf("projector lag after catching up: %+v", r)
		}
	}
	var out strings.Builder
	if err := admin.WriteLag(&out, append(rows, pr...)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "projector:tool_calls") || !strings.Contains(out.String(), "postgres") {
		t.Errorf("lag table:\n%s", out.String())
	}

}
