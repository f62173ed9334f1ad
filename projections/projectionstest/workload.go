package projectionstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Log is an in-process broker with the platform's topics.
type Log struct {
	Broker  *streams.Broker
	Streams streams.Config
	Adm     *kadm.Client
	cl      *kgo.Client
}

// NewLog starts a kfake broker with every platform topic in partitions
// partitions, closed when the test ends.
func NewLog(t testing.TB, partitions int32) *Log {
	t.Helper()
	b, err := streams.NewBroker(streams.BrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := streams.Config{Brokers: b.Addrs(), Partitions: partitions}.WithDefaults()
	cl, err := streams.NewClient(cfg, "projectionstest", nil)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	l := &Log{Broker: b, Streams: cfg, Adm: kadm.NewClient(cl), cl: cl}
	t.Cleanup(func() {
		cl.Close()
		b.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := streams.EnsureTopics(ctx, l.Adm, cfg.Topics, partitions, 1); err != nil {
		t.Fatal(err)
	}
	return l
}

// Produce writes records with the platform's client settings (acks=all,
// the goka-compatible partitioner), so keys land where production puts
// them. On return each record carries its partition and offset.
func (l *Log) Produce(t testing.TB, recs []*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < len(recs); i += 5000 {
		end := min(i+5000, len(recs))
		if err := l.cl.ProduceSync(ctx, recs[i:end]...).FirstErr(); err != nil {
			t.Fatalf("producing: %v", err)
		}
	}
}

// Workload is a realistic mix of the projector's sources: sessions that
// initialize, work and close (some deleted with a tombstone), tool calls
// from them and stateless ones, duplicate jobs (client retries), duplicate
// results (a job run twice), results produced before their jobs, calls
// still running, and every outcome.
type Workload struct {
	// Sessions is the number of sessions. Zero means 50.
	Sessions int
	// CallsPerSession is the number of tool calls per session. Zero means 4.
	CallsPerSession int
	// Seed makes ids unique to this workload (two workloads on one log).
	Seed string
}

var toolNames = []string{"test_simple_text", "search", "fetch_page", "run_query", "summarize"}

// Records encodes the workload with the schema registry, in production
// order: sessions interleaved round-robin.
func (w Workload) Records(t testing.TB, topics streams.Topics, reg *schemas.Registry) []*kgo.Record {
	t.Helper()
	recs, err := w.records(topics, reg)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func (w Workload) records(topics streams.Topics, reg *schemas.Registry) ([]*kgo.Record, error) {
	if w.Sessions == 0 {
		w.Sessions = 50
	}
	if w.CallsPerSession == 0 {
		w.CallsPerSession = 4
	}
	sessionsTopic := streams.Table(topics.SessionsGroup())
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	per := make([][]*kgo.Record, w.Sessions)
	var err error
	fail := func(e error) {
		if err == nil {
			err = e
		}
	}
	for i := 0; i < w.Sessions; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s/session/%d", w.Seed, i)))
		sid := hex.EncodeToString(sum[:16])
		principal := fmt.Sprintf("user-%d", i%7)
		at := base.Add(time.Duration(i) * time.Second)
		st := &schemas.SessionState{SessionID: sid, State: schemas.SessionInitializing, ProtocolVersion: "2025-11-25",
			ClientInfo: []byte(`{"name":"agent","version":"1.2.3"}`), ClientCapabilities: []byte(`{"sampling":{},"elicitation":{}}`),
			Principal: principal, CreatedAt: at, LastActivity: at, LastOffset: int64(i * 100), Requests: 1}
		seq := &per[i]
		emitState := func() {
			v, e := reg.EncodeSession(st)
			if e != nil {
				fail(e)
			}
			*seq = append(*seq, &kgo.Record{Topic: sessionsTopic, Key: []byte(sid), Value: v})
		}
		emitState()
		st.State, st.Requests, st.LastActivity = schemas.SessionActive, 2, at.Add(10*time.Millisecond)
		emitState()
		for c := 0; c < w.CallsPerSession; c++ {
			n := i*w.CallsPerSession + c
			callAt := at.Add(time.Duration(c+1) * 100 * time.Millisecond)
			eid, sess := streams.SessionEventID(sid, []byte(strconv.Itoa(c+1))), sid
			if n%10 == 9 {
				// A stateless (2026-07-28) call with an idempotency key.
				eid, sess = streams.KeyedEventID(principal, fmt.Sprintf("%s-key-%d", w.Seed, n)), ""
			}
			var args []byte
			if n%6 != 5 {
				args = []byte(fmt.Sprintf(`{"n":%d,"q":"%s"}`, n, strings.Repeat("x", n%40)))
			}
			job := &schemas.ToolJob{EventID: eid, SessionID: sess, Principal: principal, Tool: toolNames[n%len(toolNames)],
				Arguments: args, ReplyGateway: "gw-1", ReplyToken: fmt.Sprintf("tok-%d", n), AcceptedAt: callAt}
			res := &schemas.ToolResult{EventID: eid, Executor: fmt.Sprintf("ex-%d", n%3), Response: response(n),
				StartedAt: callAt.Add(time.Millisecond), FinishedAt: callAt.Add(time.Duration(1+n%50) * time.Millisecond)}
			jv, e := reg.EncodeJob(job)
			if e != nil {
				fail(e)
			}
			rv, e := reg.EncodeResult(res)
			if e != nil {
				fail(e)
			}
			jobRec := &kgo.Record{Topic: topics.ToolCalls(), Key: []byte(eid), Value: jv}
			resRec := &kgo.Record{Topic: topics.ToolResults(), Key: []byte(eid), Value: rv}
			switch {
			case n%13 == 12: // still running: no result yet
				*seq = append(*seq, jobRec)
			case n%5 == 4: // the result's topic is ahead of the job's
				*seq = append(*seq, resRec, jobRec)
			default:
				*seq = append(*seq, jobRec, resRec)
			}
			if n%7 == 6 { // a client retry: the same call accepted again
				dup := *job
				dup.ReplyToken, dup.AcceptedAt = dup.ReplyToken+"-retry", callAt.Add(2*time.Second)
				v, e := reg.EncodeJob(&dup)
				if e != nil {
					fail(e)
				}
				*seq = append(*seq, &kgo.Record{Topic: topics.ToolCalls(), Key: []byte(eid), Value: v})
			}
			if n%11 == 10 && n%13 != 12 { // the job ran twice: a second, later result
				dup := *res
				dup.Executor, dup.Response = "ex-rerun", []byte(`{"result":{"content":[],"resultType":"complete"}}`)
				dup.FinishedAt = dup.FinishedAt.Add(time.Second)
				v, e := reg.EncodeResult(&dup)
				if e != nil {
					fail(e)
				}
				*seq = append(*seq, &kgo.Record{Topic: topics.ToolResults(), Key: []byte(eid), Value: v})
			}
			if c%2 == 1 {
				st.Requests += 2
				st.LastActivity = callAt
				st.LastOffset += 2
				emitState()
			}
		}
		if i%3 == 2 {
			st.State = schemas.SessionClosed
			st.LastActivity = st.LastActivity.Add(time.Second)
			emitState()
		}
		if i%17 == 16 {
			*seq = append(*seq, &kgo.Record{Topic: sessionsTopic, Key: []byte(sid)}) // tombstone
		}
	}
	var out []*kgo.Record
	for k := 0; ; k++ {
		any := false
		for i := range per {
			if k < len(per[i]) {
				out = append(out, per[i][k])
				any = true
			}
		}
		if !any {
			break
		}
	}
	return out, err
}

func response(n int) []byte {
	switch n % 4 {
	case 2:
		return []byte(`{"result":{"content":[{"type":"text","text":"boom"}],"isError":true,"resultType":"complete"}}`)
	case 3:
		return []byte(`{"error":{"code":-32602,"message":"bad arguments"}}`)
	}
	return []byte(fmt.Sprintf(`{"result":{"content":[{"type":"text","text":"answer %d"}],"resultType":"complete"}}`, n))
}
