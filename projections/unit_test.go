package projections_test

import (
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRingSpreadsAndMovesLittle(t *testing.T) {
	names := []string{"db1:5432/a", "db2:5432/b", "db3:5432/c"}
	r3, err := projections.NewRing(names, 0)
	if err != nil {
		t.Fatal(err)
	}
	r4, err := projections.NewRing(append(names, "db4:5432/d"), 0)
	if err != nil {
		t.Fatal(err)
	}
	reordered, err := projections.NewRing([]string{names[2], names[0], names[1]}, 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 60000
	count := make([]int, 3)
	moved := 0
	for i := 0; i < n; i++ {
		k := streams.SessionEventID(fmt.Sprint(i), []byte("1"))
		o := r3.Owner(k)
		count[o]++
		if o4 := r4.Owner(k); o4 != o {
			if o4 != 3 {
				t.Fatalf("key %s moved between old shards %d -> %d", k, o, o4)
			}
			moved++
		}
		if names[o] != reordered.Names()[reordered.Owner(k)] {
			t.Fatalf("key %s changed shard when the DSN list was reordered", k)
		}
	}
	for i, c := range count {
		if math.Abs(float64(c)-n/3) > 0.1*n/3 {
			t.Errorf("shard %d holds %d of %d keys: more than 10%% off even", i, c, n)
		}
	}
	if f := float64(moved) / n; f < 0.18 || f > 0.32 {
		t.Errorf("adding a 4th shard moved %.1f%% of the keys, want about 25%%", 100*f)
	}
	if _, err := projections.NewRing([]string{"a", "a"}, 0); err == nil {
		t.Error("duplicate shard names accepted")
	}
}

func TestOutcome(t *testing.T) {
	for _, c := range []struct {
		body, outcome string
		code          int32
	}{
		{`{"result":{"content":[],"resultType":"complete"}}`, projections.OutcomeOK, 0},
		{`{"result":{"content":[{"type":"text","text":"x"}],"isError":true}}`, projections.OutcomeToolError, 0},
		{`{"error":{"code":-32602,"message":"bad"}}`, projections.OutcomeError, -32602},
		{`not json`, projections.OutcomeError, 0},
		{`{}`, projections.OutcomeError, 0},
	} {
		o, code := projections.Outcome([]byte(c.body))
		got := int32(0)
		if code != nil {
			got = *code
		}
		if o != c.outcome || got != c.code {
			t.Errorf("Outcome(%s) = %s, %d; want %s, %d", c.body, o, got, c.outcome, c.code)
		}
	}
}

func TestDecodeMergesPerKey(t *testing.T) {
	reg := schemas.MustLoad()
	topics := streams.Topics{}
	dec, err := projections.NewDecoder(reg, topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_760_000_000_000).UTC()
	job := func(token string, off int64) *kgo.Record {
		v, err := reg.EncodeJob(&schemas.ToolJob{EventID: "e1", SessionID: "s1", Principal: "alice", Tool: "search",
			Arguments: []byte(`{"q":1}`), ReplyToken: token, AcceptedAt: at.Add(time.Duration(off) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: topics.ToolCalls(), Partition: 2, Offset: off, Key: []byte("e1"), Value: v}
	}
	result := func(exec string, off int64) *kgo.Record {
		v, err := reg.EncodeResult(&schemas.ToolResult{EventID: "e1", Executor: exec, Response: []byte(`{"result":{}}`), StartedAt: at, FinishedAt: at.Add(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: topics.ToolResults(), Partition: 2, Offset: off, Key: []byte("e1"), Value: v}
	}
	state := func(st schemas.SessionLifecycle, off int64) *kgo.Record {
		v, err := reg.EncodeSession(&schemas.SessionState{SessionID: "s1", State: st, Principal: "alice", CreatedAt: at, LastActivity: at})
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: streams.Table(topics.SessionsGroup()), Partition: 1, Offset: off, Key: []byte("s1"), Value: v}
	}
	tomb := &kgo.Record{Topic: streams.Table(topics.SessionsGroup()), Partition: 1, Offset: 9, Key: []byte("s1")}
	b, rejects := dec.Decode([]*kgo.Record{result("ex-2", 7), job("t1", 3), job("t2", 5), result("ex-1", 4),
		state(schemas.SessionActive, 4), state(schemas.SessionClosed, 8), tomb,
		{Topic: topics.ToolCalls(), Partition: 0, Offset: 11, Key: []byte("x"), Value: []byte("garbage")},
		// Another record type on the results topic (executors' control
		// records share it): not this projection's, not a reject.
		{Topic: topics.ToolResults(), Partition: 2, Offset: 12, Key: []byte("e1"), Value: []byte{0, 0, 0, 0, 99, 1, 2}}}, "")
	if len(rejects) != 1 || rejects[0].Pos.Offset != 11 {
		t.Fatalf("rejects = %+v, want the garbage record", rejects)
	}
	if len(b.Calls) != 1 || b.Calls[0].Job.Pos.Offset != 3 || b.Calls[0].Result.Pos.Offset != 4 || b.Calls[0].Result.Executor != "ex-1" {
		t.Fatalf("call row = %+v: want the lowest-offset job and result", b.Calls)
	}
	if len(b.Sessions) != 1 || !b.Sessions[0].Deleted || b.Sessions[0].State != "CLOSED" || b.Sessions[0].Pos.Offset != 9 {
		t.Fatalf("session row = %+v: want the closed state, deleted, at the tombstone's offset", b.Sessions)
	}
	if b.Events != 9 {
		t.Errorf("events = %d, want 9", b.Events)
	}
	want := map[string]int64{topics.ToolCalls() + "/2": 6, topics.ToolResults() + "/2": 13, streams.Table(topics.SessionsGroup()) + "/1": 10, topics.ToolCalls() + "/0": 12}
	for _, o := range b.Offsets {
		if want[fmt.Sprintf("%s/%d", o.Topic, o.Partition)] != o.Next {
			t.Errorf("offset %s/%d = %d, want %v", o.Topic, o.Partition, o.Next, want)
		}
	}
	if len(b.Offsets) != len(want) {
		t.Errorf("offsets %+v, want %v", b.Offsets, want)
	}
	parts := b.SplitByPartition(2)
	if len(parts) != 2 || len(parts[0].Calls) != 1 || len(parts[1].Sessions) != 1 || len(parts[0].Offsets) != 3 {
		t.Errorf("split by partition: %+v", parts)
	}
}

func TestNewDecoderRejectsSourcelessProjection(t *testing.T) {
	_, err := projections.NewDecoder(schemas.MustLoad(), streams.Topics{}, []string{projections.Tasks})
	if err == nil || !strings.Contains(err.Error(), "no source") {
		t.Fatalf("err = %v", err)
	}
}

type countingMetrics struct {
	events, failed, rejected atomic.Int64
}

func (c *countingMetrics) Applied(n int, _ time.Duration) { c.events.Add(int64(n)) }
func (c *countingMetrics) Failed(error)                   { c.failed.Add(1) }
func (c *countingMetrics) Rejected(string)                { c.rejected.Add(1) }
