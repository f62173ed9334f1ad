//go:build containers

package containers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Scenario 1: MCP clients spread over both gateways; every call answered
// with the right result; the projection counts every call once.
func TestRoundRobin(t *testing.T) {
	const sessions, perSession = 20, 25
	top := StartTopology(t, TopologyConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gws := top.GatewayURLs(ctx)
	// Half stateful 2025-11-25 sessions, half stateless 2026-07-28 clients.
	ss := append(openSessions(t, ctx, gws, sessions/2, stateful), openSessions(t, ctx, gws, sessions/2, stateless)...)
	var tl tally
	start := time.Now()
	load(ctx, ss, perSession, 30*time.Second, &tl)
	el := time.Since(start)
	t.Logf("round-robin over %d gateways: %s in %v (%.0f calls/s)", len(gws), &tl, el.Round(time.Millisecond), float64(tl.calls.Load())/el.Seconds())
	const want = sessions * perSession
	if tl.calls.Load() != want || tl.answered.Load() != want || tl.wrong.Load() != 0 || tl.errors.Load() != 0 {
		t.Fatalf("want %d calls all answered correctly, got %s (first error: %v)", want, &tl, tl.firstErr)
	}
	got, lagged, err := waitRows(ctx, top.HostPGDSN, "SELECT count(*) FROM tool_calls WHERE outcome = 'ok'", want, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("projection: %d tool_calls rows with outcome ok (caught up %v after the last answer)", got, lagged.Round(time.Millisecond))
	// No process restarted: the executors' counters are exact.
	ex, err := executions(ctx, top.Processors...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("executions: %d", ex)
	if ex != want {
		t.Fatalf("executions %d, want %d (each call exactly once)", ex, want)
	}
}

// Scenario 3: a processor container is SIGKILLed while clients call, and
// restarted; its partitions move to the other processor and come back.
func TestProcessorKill(t *testing.T) {
	const sessions = 10
	top := StartTopology(t, TopologyConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ss := openSessions(t, ctx, top.GatewayURLs(ctx), sessions, stateful)
	p1, p2 := top.Processors[0], top.Processors[1]
	var tl tally
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); loadUntil(ctx, ss, stop, 120*time.Second, &tl) }()

	time.Sleep(3 * time.Second)
	before, err := executions(ctx, p1)
	if err != nil {
		t.Fatal(err)
	}
	atKill := tl.answered.Load()
	if err := top.Kill(ctx, p1); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	time.Sleep(5 * time.Second)
	duringOutage := tl.answered.Load() - atKill
	restart := time.Now()
	if err := top.Restart(ctx, p1); err != nil {
		t.Fatal(err)
	}
	readyIn := time.Since(restart)
	time.Sleep(5 * time.Second)
	close(stop)
	<-done
	after, err := executions(ctx, p1, p2)
	if err != nil {
		t.Fatal(err)
	}
	p1After, _ := executions(ctx, p1)
	t.Logf("processor kill: %s (slowest = the longest a call waited for the partition move); %d answered in the 5 s p1 was dead; p1 ready %v after its restart; load ran %v after the kill; executions observed: p1 before kill %d, p1 after restart %d, p2 %d, total %d",
		&tl, duringOutage, readyIn.Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond), before, p1After, after-p1After, before+after)
	n := tl.calls.Load()
	// A call whose job was running on the killed executor is answered with
	// CodeInterrupted by design (the tool is not idempotent); every other
	// call must be answered correctly. Only calls in flight on p1 at the
	// kill can be interrupted: at most one per session.
	if tl.answered.Load()+tl.interrupted.Load() != n || tl.wrong.Load() != 0 || tl.errors.Load() != tl.interrupted.Load() {
		t.Fatalf("want every call answered correctly or interrupted, got %s (first error: %v)", &tl, tl.firstErr)
	}
	if tl.interrupted.Load() > sessions {
		t.Fatalf("%d calls interrupted, more than the %d that can be in flight", tl.interrupted.Load(), sessions)
	}
	if duringOutage == 0 {
		t.Fatalf("no call answered while p1 was dead: its partitions did not move")
	}
	if p1After == 0 {
		t.Fatalf("p1 executed nothing after its restart: its partitions did not come back")
	}
	// The executions p1 ran between the metrics scrape and the kill are
	// not observed: the total may fall short of the calls, never exceed it.
	if before+after > n {
		t.Fatalf("executions observed %d > calls %d: a call ran twice", before+after, n)
	}
	got, lag, err := waitRows(ctx, top.HostPGDSN, "SELECT count(*) FROM tool_calls WHERE outcome = 'ok'", tl.answered.Load(), 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rows, _, err := waitRows(ctx, top.HostPGDSN, "SELECT count(*) FROM tool_calls", n, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("projection: %d tool_calls rows, %d ok (caught up %v after the last answer)", rows, got, lag.Round(time.Millisecond))
}

// Scenario 5: the broker stops and starts again on its data volume; the
// roles reconnect by themselves and nothing acknowledged is lost.
func TestBrokerRestart(t *testing.T) {
	const sessions, perSession = 10, 20
	top := StartTopology(t, TopologyConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ss := openSessions(t, ctx, top.GatewayURLs(ctx), sessions, stateful)
	var a tally
	load(ctx, ss, perSession, 30*time.Second, &a)
	if a.answered.Load() != sessions*perSession || a.wrong.Load() != 0 {
		t.Fatalf("before the restart: %s (first error: %v)", &a, a.firstErr)
	}
	if _, _, err := waitRows(ctx, top.HostPGDSN, "SELECT count(*) FROM tool_calls WHERE outcome = 'ok'", sessions*perSession, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	stopAt := time.Now()
	grace := 10 * time.Second
	if err := top.Broker.c.Stop(ctx, &grace); err != nil {
		t.Fatal(err)
	}
	if err := top.Restart(ctx, top.Broker); err != nil {
		t.Fatal(err)
	}
	brokerUp := time.Since(stopAt)

	// Recovery: every session's first call after the restart, retried
	// (bounded) until one succeeds; the failures are counted.
	var rec tally
	recStart := time.Now()
	var slowest time.Duration
	for i, cs := range ss {
		for attempt := 1; ; attempt++ {
			before := rec.errors.Load()
			rec.call(ctx, cs, 10*time.Second)
			if rec.errors.Load() == before {
				break
			}
			if attempt == 30 {
				t.Fatalf("session %d: no answer after the broker restart: %v", i, rec.firstErr)
			}
			time.Sleep(time.Second)
		}
		if d := time.Since(recStart); d > slowest {
			slowest = d
		}
	}
	var b tally
	load(ctx, ss, perSession, 30*time.Second, &b)
	t.Logf("broker restart: broker ready %v after stop; before %s; recovery %s (first error: %v), all sessions answering %v after broker ready; after %s",
		brokerUp.Round(time.Millisecond), &a, &rec, rec.firstErr, slowest.Round(time.Millisecond), &b)
	if b.answered.Load() != sessions*perSession || b.wrong.Load() != 0 || b.errors.Load() != 0 {
		t.Fatalf("after the restart: %s (first error: %v)", &b, b.firstErr)
	}
	want := a.answered.Load() + rec.answered.Load() + b.answered.Load()
	got, lag, err := waitRows(ctx, top.HostPGDSN, "SELECT count(*) FROM tool_calls WHERE outcome = 'ok'", want, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("projection: %d tool_calls rows ok = before + recovery + after (caught up %v)", got, lag.Round(time.Millisecond))
	ex, err := executions(ctx, top.Processors...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("executions: %d", ex)
	if ex != want {
		t.Fatalf("executions %d, want %d (each call exactly once)", ex, want)
	}
}

// Scenario 6: wipe the projector's tables, rebuild them with
// `mcpstream replay` in a container, compare with the tables before.
func TestReplayRecovery(t *testing.T) {
	const sessions, perSession = 10, 30
	top := StartTopology(t, TopologyConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ss := openSessions(t, ctx, top.GatewayURLs(ctx), sessions, stateful)
	var tl tally
	load(ctx, ss, perSession, 30*time.Second, &tl)
	const want = sessions * perSession
	if tl.answered.Load() != want || tl.wrong.Load() != 0 {
		t.Fatalf("%s (first error: %v)", &tl, tl.firstErr)
	}
	if _, _, err := waitRows(ctx, top.HostPGDSN, "SELECT count(*) FROM tool_calls", want, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := waitRows(ctx, top.HostPGDSN, "SELECT count(*) FROM sessions", sessions, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	grace := 10 * time.Second
	if err := top.Projector.c.Stop(ctx, &grace); err != nil {
		t.Fatal(err)
	}
	tables := []string{"sessions", "tool_calls"}
	before := dumpTables(t, ctx, top.HostPGDSN, tables)
	execSQL(t, ctx, top.HostPGDSN, "TRUNCATE sessions, tool_calls")
	if n := len(dumpTables(t, ctx, top.HostPGDSN, tables)["tool_calls"]); n != 0 {
		t.Fatalf("tool_calls has %d rows after TRUNCATE", n)
	}
	start := time.Now()
	code, out, err := top.RunOnce(ctx, "replay", "replay", "--brokers", "broker:9092", "--pg-dsn", top.PGDSN, "--instance-id", "replay")
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("mcpstream replay exited %d:\n%s", code, lastBytes(out, 4<<10))
	}
	after := dumpTables(t, ctx, top.HostPGDSN, tables)
	for _, tb := range tables {
		b, a := before[tb], after[tb]
		if len(b) != len(a) {
			t.Fatalf("%s: %d rows before the wipe, %d after replay", tb, len(b), len(a))
		}
		for i := range b {
			if b[i] != a[i] {
				t.Fatalf("%s row %d differs:\nbefore %s\nafter  %s", tb, i, b[i], a[i])
			}
		}
	}
	t.Logf("replay: container ran %v; sessions %d rows, tool_calls %d rows, equal to before the wipe", took.Round(time.Millisecond),
		len(after["sessions"]), len(after["tool_calls"]))
}

// Scenario 4: a processor is cut from the network for 30 s and put back;
// no call runs twice (neither processor restarts, so their execution
// counters are exact) and the consumer lag returns to zero.
//
// A call that p1's executor held when it was cut off is answered -31003
// ("tool call interrupted"), by design as in scenario 3: the executor's
// lease ran out, and a tool not marked idempotent is not run again
// elsewhere, since it may have run there. So every call is answered with
// its result or -31003; only calls in flight at the cut can be
// interrupted, at most one per session (each calls one at a time).
func TestNetworkPartition(t *testing.T) {
	const sessions, slowSessions = 10, 6
	top := StartTopology(t, TopologyConfig{SlowTool: true})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	ss := openSessions(t, ctx, top.GatewayURLs(ctx), sessions, stateful)
	p1, p2 := top.Processors[0], top.Processors[1]
	var tl tally
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); loadUntil(ctx, ss, stop, 120*time.Second, &tl) }()
	// Beside the instant calls, sessions whose calls run 3 s each: with them
	// some calls are always in flight on p1's executor when it is cut off,
	// so a double execution does not depend on the cut landing in the
	// instant tool's microsecond window (the runs without slow calls caught
	// 11, 0 and 1 double executions).
	slowSS := openSessions(t, ctx, top.GatewayURLs(ctx), slowSessions, stateful)
	var sl slowLoad
	slowDone := make(chan struct{})
	go func() { defer close(slowDone); sl.run(ctx, slowSS, stop) }()
	time.Sleep(3 * time.Second)
	atCut := tl.answered.Load()
	if err := top.Disconnect(ctx, p1); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	time.Sleep(30 * time.Second)
	duringCut := tl.answered.Load() - atCut
	if err := top.Connect(ctx, p1); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	var readyAfter time.Duration = -1
	for time.Since(back) < 90*time.Second {
		if readyz(ctx, p1) {
			readyAfter = time.Since(back)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(10 * time.Second)
	close(stop)
	<-done
	<-slowDone
	n := tl.calls.Load()
	slowStarted, _, slowErr := slowExecutions(ctx, top)
	sr := sl.report(slowStarted, cutAt)
	e1, err1 := executions(ctx, p1)
	e2, err2 := executions(ctx, p2)
	lag, lagAfter, lagOut := waitLagZero(t, ctx, top, 60*time.Second)
	t.Logf("partition: %s; %d answered during the 30 s cut; p1 /readyz %v after reconnecting; executions p1 %d (%v) + p2 %d (%v) = %d; lag total %d, zero %v after the load",
		&tl, duringCut, readyAfter.Round(time.Millisecond), e1, err1, e2, err2, e1+e2, lag, lagAfter.Round(time.Millisecond))
	t.Logf("partition, slow calls (%s, 3 s each): %s", SlowToolName, sr)
	answered, held := tl.answered.Load(), tl.interrupted.Load() // held: interrupted on the cut executor
	t.Logf("partition, summary: instant calls %d, answered %d, interrupted (-31003) %d, executed %d; slow calls %d (in flight at the cut %d), answered %d, interrupted (-31003) %d, executed twice %d; lag %d",
		n, answered, held, e1+e2, sr.calls, sr.inFlightAtCut, sr.ok, sr.interrupted, sr.twice, lag)
	// What the processors' upstream client went through (reported, not
	// asserted): handshakes repeated on a fresh connection after the cut,
	// sessions replaced.
	for _, pn := range []*node{p1, p2} {
		var warns []string
		for _, l := range strings.Split(logs(ctx, pn.c), "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "upstream=slow") {
				warns = append(warns, l)
			}
		}
		t.Logf("%s: %d warnings of the upstream client (first 5):\n%s", pn.name, len(warns), strings.Join(warns[:min(5, len(warns))], "\n"))
	}
	if slowErr != nil || sr.twice != 0 {
		t.Errorf("slow calls executed twice (the tool's own count): %d (%v)", sr.twice, slowErr)
	}
	if sr.other != 0 || sr.never != 0 {
		t.Errorf("slow calls: want each answered with its own result (run by the tool) or interrupted; %d were not (first: %v), %d results without an execution", sr.other, sr.first, sr.never)
	}
	if sr.interrupted > slowSessions {
		t.Errorf("%d slow calls interrupted, more than the %d that can be in flight", sr.interrupted, slowSessions)
	}
	if answered+held != n || tl.wrong.Load() != 0 || tl.errors.Load() != held {
		t.Errorf("want every call answered correctly or interrupted (-31003), got %s (first error: %v)", &tl, tl.firstErr)
	}
	if held > sessions {
		t.Errorf("%d calls interrupted, more than the %d that can be in flight", held, sessions)
	}
	if duringCut == 0 {
		t.Errorf("nothing answered during the cut: p1's partitions did not move")
	}
	// Every answered call ran exactly once; an interrupted one ran at most
	// once (on p1, if it got that far before the cut). Neither processor
	// restarted, so the counters are exact: anything above the calls is a
	// double execution.
	if err1 != nil || err2 != nil || e1+e2 < answered || e1+e2 > n {
		t.Errorf("executions %d+%d = %d, want between %d (answered) and %d (calls) (errors %v %v): %d calls ran twice, or answered calls never ran",
			e1, e2, e1+e2, answered, n, err1, err2, max(e1+e2-n, answered-(e1+e2)))
	}
	if lag != 0 {
		t.Errorf("consumer lag %d, want 0:\n%s", lag, lagOut)
	}
	if _, _, err := waitRows(ctx, top.HostPGDSN, "SELECT count(*) FROM tool_calls WHERE outcome = 'ok' AND tool = '"+tool+"'", answered, 60*time.Second); err != nil {
		t.Error(err)
	}
	if _, _, err := waitRows(ctx, top.HostPGDSN, "SELECT count(*) FROM tool_calls WHERE tool = '"+tool+"'", n, 30*time.Second); err != nil {
		t.Error(err)
	}
}

// slowLoad keeps sessions calling the slow tool, one call at a time each,
// and remembers every call.
type slowLoad struct {
	mu    sync.Mutex
	calls []*slowCall
}

func (l *slowLoad) run(ctx context.Context, ss []*mcp.ClientSession, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for i, cs := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				select {
				case <-stop:
					return
				default:
				}
				c := &slowCall{id: fmt.Sprintf("part-s%d-c%d", i, k), session: i}
				cctx, cancel := context.WithTimeout(ctx, 120*time.Second)
				start := time.Now()
				res, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: SlowToolName, Arguments: map[string]any{"id": c.id, "steps": 6, "step_ms": 500}})
				cancel()
				c.took, c.ended = time.Since(start), time.Now()
				c.record(res, err)
				l.mu.Lock()
				l.calls = append(l.calls, c)
				l.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// slowReport is what the slow calls came to.
type slowReport struct {
	calls, ok, interrupted, other, inFlightAtCut, twice, never int
	first                                                      error
}

func (r slowReport) String() string {
	return fmt.Sprintf("calls %d (%d in flight at the cut), answered with their result %d, interrupted %d, other errors %d; executed twice %d, never %d",
		r.calls, r.inFlightAtCut, r.ok, r.interrupted, r.other, r.twice, r.never)
}

func (l *slowLoad) report(started map[string]int, cutAt time.Time) slowReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	var r slowReport
	for _, c := range l.calls {
		r.calls++
		if c.ended.Add(-c.took).Before(cutAt) && c.ended.After(cutAt) {
			r.inFlightAtCut++
		}
		switch {
		case c.err == nil && c.text == "done "+c.id:
			r.ok++
		case c.err != nil && interrupted(c.err):
			r.interrupted++
		default:
			r.other++
			if r.first == nil {
				r.first = fmt.Errorf("%s: %q %v", c.id, c.text, c.err)
			}
		}
		switch n := started[c.id]; {
		case n > 1:
			r.twice += n - 1
		case n == 0 && c.err == nil:
			r.never++ // answered with a result, yet the tool never ran it
		}
	}
	return r
}

// advisoryProjectorGroup is the projector's Kafka consumer group. Its
// offsets there are advisory: the projector commits them at most once a
// second and only when a batch arrives, so after the last batch they can
// stay behind for good while the projector is fully caught up. Its real
// position is the one it commits in PostgreSQL with its rows, which
// `mcpstream lag --pg-dsn` reports as the "projector:<name>" groups.
const advisoryProjectorGroup = "mcpstream-projector"

// waitLagZero runs `mcpstream lag --pg-dsn` in a container until every
// group's total is zero (bounded), the projector counted by its PostgreSQL
// offsets; it returns the last total.
func waitLagZero(t *testing.T, ctx context.Context, top *Topology, d time.Duration) (int64, time.Duration, string) {
	t.Helper()
	start := time.Now()
	var total int64 = -1
	var out string
	for i := 0; time.Since(start) < d; i++ {
		code, o, err := top.RunOnce(ctx, fmt.Sprintf("lag-%d", i), "lag", "--brokers", "broker:9092", "--instance-id", "lag", "--pg-dsn", top.PGDSN)
		out = o
		if err != nil || code != 0 {
			t.Logf("mcpstream lag: exit %d, %v\n%s", code, err, lastBytes(o, 2<<10))
		} else {
			total = 0
			seen, projector := false, false
			for _, line := range strings.Split(o, "\n") {
				f := strings.Fields(line)
				if len(f) == 3 && f[1] == "total" && f[0] != advisoryProjectorGroup {
					projector = projector || strings.HasPrefix(f[0], "projector:")
					v, err := strconv.ParseInt(f[2], 10, 64)
					if err != nil {
						t.Fatalf("lag line %q: %v", line, err)
					}
					total += v
					seen = true
				}
			}
			if !projector {
				t.Fatalf("mcpstream lag --pg-dsn printed no projector:<name> group:\n%s", lastBytes(o, 4<<10))
			}
			if seen && total == 0 {
				return 0, time.Since(start), out
			}
		}
		time.Sleep(2 * time.Second)
	}
	return total, time.Since(start), out
}

// Scenario 7: every gateway and processor restarted (SIGTERM, then start)
// one at a time while 50 clients with 2025-11-25 sessions keep calling
// through a failover balancer: zero client-visible errors.
func TestRollingRestart(t *testing.T) {
	const sessions = 50
	top := StartTopology(t, TopologyConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	ss, lb := openBalanced(t, ctx, top.GatewayURLs(ctx), sessions, stateful)
	var tl tally
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); loadUntil(ctx, ss, stop, 120*time.Second, &tl) }()
	time.Sleep(3 * time.Second)
	var steps []string
	for _, n := range append(append([]*node{}, top.Gateways...), top.Processors...) {
		start := time.Now()
		grace := 20 * time.Second
		if err := n.c.Stop(ctx, &grace); err != nil {
			t.Fatal(err)
		}
		stopped := time.Since(start)
		if err := top.Restart(ctx, n); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, fmt.Sprintf("%s stop %v, ready %v", n.name, stopped.Round(time.Millisecond), (time.Since(start)-stopped).Round(time.Millisecond)))
		time.Sleep(3 * time.Second)
	}
	time.Sleep(3 * time.Second)
	close(stop)
	<-done
	n := tl.calls.Load()
	t.Logf("rolling restart: %s; balancer fail-overs %d; %s", &tl, lb.failovers.Load(), strings.Join(steps, "; "))
	if tl.answered.Load() != n || tl.wrong.Load() != 0 || tl.errors.Load() != 0 {
		t.Fatalf("want zero client-visible errors, got %s (first error: %v)", &tl, tl.firstErr)
	}
	if _, _, err := waitRows(ctx, top.HostPGDSN, "SELECT count(*) FROM tool_calls WHERE outcome = 'ok'", n, 60*time.Second); err != nil {
		t.Fatal(err)
	}
}
