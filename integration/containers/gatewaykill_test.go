//go:build containers

package containers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// progressLog is what one client's SDK handed to its progress handler,
// per progress token, in order.
type progressLog struct {
	mu sync.Mutex
	m  map[string][]float64
}

func (p *progressLog) add(tok string, v float64) {
	p.mu.Lock()
	p.m[tok] = append(p.m[tok], v)
	p.mu.Unlock()
}

func (p *progressLog) count(tok string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m[tok])
}

func (p *progressLog) get(tok string) []float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]float64(nil), p.m[tok]...)
}

// slowCall is one tools/call of the slow tool and what came of it.
type slowCall struct {
	id, token string
	session   int
	text      string
	err       error
	took      time.Duration
	ended     time.Time
}

// record keeps a call's answer: its text, or why it is not one.
func (c *slowCall) record(res *mcp.CallToolResult, err error) {
	switch {
	case err != nil:
		c.err = err
	case res.IsError || len(res.Content) != 1:
		b, _ := json.Marshal(res)
		c.err = fmt.Errorf("unexpected result %s", b)
	default:
		if tc, ok := res.Content[0].(*mcp.TextContent); ok {
			c.text = tc.Text
		}
	}
}

// Scenario 2: a gateway container is SIGKILLed while its clients are in
// the middle of tool calls that stream progress over SSE. The clients (the
// official go-sdk, behind the fail-over balancer) resume each stream with
// Last-Event-ID on the other gateway, which reads the rest of the stream
// from the reply log. Counted on the wire (sseTap) and in the SDK: every
// call answered with its own result exactly once, every progress event
// exactly once and in order, one resumption per cut stream, each call
// executed exactly once (by the tool's own count and the executors').
//
// Half the sessions use gateway-1 (killed), half gateway-2 (the control
// group: no resumption expected). Of gateway-1's cut calls, half are
// "late": the tool waits before its first progress, so at the kill their
// stream holds only the priming event, and they resume from it.
func TestGatewayKill(t *testing.T) {
	const (
		sessions   = 16
		steps      = 10
		stepMS     = 400
		lateFirst  = 4000 // ms before a late call's first progress
		afterCalls = 2    // calls per session after the kill
	)
	top := StartTopology(t, TopologyConfig{SlowTool: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gws := top.GatewayURLs(ctx)
	lb := newFailover(gws)
	tap := newSSETap(lb)
	hc := &http.Client{Transport: tap}

	type client struct {
		cs     *mcp.ClientSession
		onDead bool // prefers gateway-1, the one killed
		late   bool
		prog   *progressLog
	}
	clients := make([]*client, sessions)
	for i := range clients {
		pl := &progressLog{m: map[string][]float64{}}
		c := mcp.NewClient(&mcp.Implementation{Name: "mcpstream-containers", Version: "1"}, &mcp.ClientOptions{
			ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
				pl.add(fmt.Sprint(r.Params.ProgressToken), r.Params.Progress)
			}})
		tr := &mcp.StreamableClientTransport{Endpoint: gws[i%2], HTTPClient: hc}
		cs, err := c.Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: stateful})
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		t.Cleanup(func() { _ = cs.Close() })
		clients[i] = &client{cs: cs, onDead: i%2 == 0, late: i%4 == 0, prog: pl}
	}

	var mu sync.Mutex
	var calls []*slowCall
	call := func(i int, label string, firstMS int) *slowCall {
		c := &slowCall{id: fmt.Sprintf("s%02d-%s", i, label), session: i}
		c.token = "tok-" + c.id
		p := &mcp.CallToolParams{Name: SlowToolName, Arguments: map[string]any{"id": c.id, "steps": steps, "step_ms": stepMS, "first_ms": firstMS}}
		p.SetProgressToken(c.token)
		cctx, ccancel := context.WithTimeout(ctx, 90*time.Second)
		defer ccancel()
		start := time.Now()
		res, err := clients[i].cs.CallTool(cctx, p)
		c.took, c.ended = time.Since(start), time.Now()
		c.record(res, err)
		mu.Lock()
		calls = append(calls, c)
		mu.Unlock()
		return c
	}

	// Wave 1: every session starts a call at once; gateway-1 is killed when
	// every early call is mid-stream (3+ progress events) and every late
	// call's stream is primed.
	waveStart := time.Now()
	var wave sync.WaitGroup
	for i, c := range clients {
		first := 0
		if c.late {
			first = lateFirst
		}
		wave.Add(1)
		go func() { defer wave.Done(); call(i, "w1", first) }()
	}
	midStream := func() (bool, string) {
		_, _, primed, _ := tap.snapshot()
		var missing []string
		for i, c := range clients {
			tok := fmt.Sprintf("tok-s%02d-w1", i)
			switch {
			case c.late && primed[c.cs.ID()].Before(waveStart):
				missing = append(missing, fmt.Sprintf("s%02d not primed", i))
			case c.late && c.prog.count(tok) > 0:
				missing = append(missing, fmt.Sprintf("s%02d (late) already has progress", i))
			case !c.late && c.prog.count(tok) < 3:
				missing = append(missing, fmt.Sprintf("s%02d has %d progress", i, c.prog.count(tok)))
			}
		}
		return len(missing) == 0, strings.Join(missing, ", ")
	}
	for {
		ok, why := midStream()
		if ok {
			break
		}
		if time.Since(waveStart) > 30*time.Second {
			_, wire, _, _ := tap.snapshot()
			mu.Lock()
			var ended []string
			for _, c := range calls {
				ended = append(ended, fmt.Sprintf("%s after %v: %q %v", c.id, c.took.Round(time.Millisecond), c.text, c.err))
			}
			mu.Unlock()
			t.Fatalf("calls not mid-stream %v after they started: %s\nprogress on the wire: %v\ncalls ended: %s", time.Since(waveStart), why, wire, strings.Join(ended, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
	dead := top.Gateways[0]
	if err := top.Kill(ctx, dead); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	t.Logf("gateway-1 SIGKILLed %v after the first wave started", killedAt.Sub(waveStart).Round(time.Millisecond))
	wave.Wait()
	cutDone := time.Since(killedAt)

	// After the kill: every session keeps calling; gateway-1's sessions
	// reach gateway-2 through the balancer.
	var rest sync.WaitGroup
	for i := range clients {
		rest.Add(1)
		go func() {
			defer rest.Done()
			for k := 1; k <= afterCalls; k++ {
				call(i, fmt.Sprintf("a%d", k), 0)
			}
		}()
	}
	rest.Wait()

	if st, err := dead.c.State(ctx); err != nil || st.Running {
		t.Fatalf("gateway-1 still running after SIGKILL (state %+v, %v)", st, err)
	}

	// What the clients got.
	responses, wireProgress, _, resumes := tap.snapshot()
	want := make([]float64, steps)
	for k := range want {
		want[k] = float64(k + 1)
	}
	var lost, wrong, dupResults, badWire, badSDK int
	var problems []string
	note := func(format string, a ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, a...))
		}
	}
	for _, c := range calls {
		if c.err != nil {
			lost++
			note("%s: %v", c.id, c.err)
			continue
		}
		if c.text != "done "+c.id {
			wrong++
			note("%s: result %q", c.id, c.text)
		}
		if got := wireProgress[c.token]; !slices.Equal(got, want) {
			badWire++
			note("%s: progress on the wire %v", c.id, got)
		}
		if got := clients[c.session].prog.get(c.token); !slices.Equal(got, want) {
			badSDK++
			note("%s: progress in the SDK %v", c.id, got)
		}
	}
	delivered := 0
	for k, n := range responses {
		delivered += n
		if n != 1 {
			dupResults += n - 1
			note("%s: %d responses on the wire", k, n)
		}
	}
	total := sessions * (1 + afterCalls)

	// Resumptions: one per cut stream (gateway-1's sessions, first wave),
	// all answered by gateway-2, none for the control group.
	cut := map[string]bool{}
	for _, c := range clients {
		if c.onDead {
			cut[c.cs.ID()] = true
		}
	}
	resumedBy := map[string]int{}
	var recov []time.Duration
	var resumeErrs int
	for _, r := range resumes {
		if r.status != http.StatusOK || !r.final || r.host != lb.hosts[1] || !cut[r.session] {
			resumeErrs++
			note("resume of session %s: status %d at %s, %d events, final=%v", r.session, r.status, r.host, r.events, r.final)
			continue
		}
		resumedBy[r.session]++
		recov = append(recov, r.opened.Sub(killedAt))
	}
	sort.Slice(recov, func(i, j int) bool { return recov[i] < recov[j] })
	var slowestLate, slowestEarly time.Duration
	for _, c := range calls {
		if strings.HasSuffix(c.id, "-w1") && clients[c.session].onDead {
			if clients[c.session].late {
				slowestLate = max(slowestLate, c.took)
			} else {
				slowestEarly = max(slowestEarly, c.took)
			}
		}
	}

	// Executions: by the tool's own count, and by the executors' metrics
	// (no processor restarted, so both are exact).
	started, finished, exErr := slowExecutions(ctx, top)
	metricEx, metricErr := executionsOf(ctx, SlowToolName, top.Processors...)
	var twice, never int
	for _, c := range calls {
		switch n := started[c.id]; {
		case n == 0:
			never++
		case n > 1:
			twice += n - 1
			note("%s executed %d times", c.id, n)
		}
		if finished[c.id] != started[c.id] {
			note("%s: %d executions started, %d finished", c.id, started[c.id], finished[c.id])
		}
	}

	pct := func(p float64) time.Duration {
		if len(recov) == 0 {
			return -1
		}
		return recov[min(len(recov)-1, int(p*float64(len(recov))))].Round(time.Millisecond)
	}
	t.Logf("gateway kill: calls %d (%d cut mid-stream: %d with progress, %d primed only), answered %d, lost %d, wrong result %d, "+
		"responses on the wire %d (duplicates %d), progress sequences wrong on the wire %d / in the SDK %d; "+
		"resumptions %d of %d cut streams (bad %d), stream reopened on gateway-2 after the kill p50 %v max %v; "+
		"cut calls took up to %v (with progress) / %v (primed only), all cut calls done %v after the kill; "+
		"executions: tool %d (twice %d, never %d), executor metrics %d; balancer fail-overs %d",
		len(calls), len(cut), len(cut)/2, len(cut)/2, len(calls)-lost, lost, wrong, delivered, dupResults, badWire, badSDK,
		len(recov), len(cut), resumeErrs, pct(0.5), pct(1), slowestEarly.Round(time.Millisecond), slowestLate.Round(time.Millisecond),
		cutDone.Round(time.Millisecond), len(started), twice, never, metricEx, lb.failovers.Load())
	if len(problems) > 0 {
		t.Logf("first problems:\n  %s", strings.Join(problems, "\n  "))
	}

	if len(calls) != total || lost != 0 || wrong != 0 {
		t.Errorf("want %d calls answered with their own result, got %d calls, %d lost, %d wrong", total, len(calls), lost, wrong)
	}
	if delivered != total || dupResults != 0 {
		t.Errorf("want exactly %d responses on the wire, one per call; got %d (%d duplicates)", total, delivered, dupResults)
	}
	if badWire != 0 || badSDK != 0 {
		t.Errorf("want progress 1..%d exactly once, in order, for every call; %d wrong on the wire, %d in the SDK", steps, badWire, badSDK)
	}
	if len(resumedBy) != len(cut) || resumeErrs != 0 {
		t.Errorf("want one resumption on gateway-2 per cut stream (%d), got %d sessions resumed, %d bad resumptions", len(cut), len(resumedBy), resumeErrs)
	}
	for sid, n := range resumedBy {
		if n != 1 {
			t.Errorf("session %s resumed %d times, want once", sid, n)
		}
	}
	if exErr != nil || len(started) != total || twice != 0 || never != 0 {
		t.Errorf("want each of %d calls executed exactly once by the tool, got %d ids, %d extra executions, %d never (%v)", total, len(started), twice, never, exErr)
	}
	if metricErr != nil || metricEx != int64(total) {
		t.Errorf("executor metrics: %d executions of %s, want %d (%v)", metricEx, SlowToolName, total, metricErr)
	}
	if lb.failovers.Load() == 0 {
		t.Errorf("the balancer never failed over: gateway-1's clients did not notice its death")
	}
	got, lag, err := waitRows(ctx, top.HostPGDSN, fmt.Sprintf("SELECT count(*) FROM tool_calls WHERE tool = '%s' AND outcome = 'ok'", SlowToolName), int64(total), 60*time.Second)
	if err != nil {
		t.Error(err)
	} else {
		t.Logf("projection: %d tool_calls rows ok (caught up %v after the last answer)", got, lag.Round(time.Millisecond))
	}
}

// slowExecutions reads the slow tool's own execution counts.
func slowExecutions(ctx context.Context, top *Topology) (started, finished map[string]int, err error) {
	u, err := top.SlowTool.url(ctx)
	if err != nil {
		return nil, nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/executions", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the slow tool's executions: %w", err)
	}
	defer resp.Body.Close()
	var v struct {
		Started  map[string]int `json:"started"`
		Finished map[string]int `json:"finished"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, nil, fmt.Errorf("decoding the slow tool's executions: %w", err)
	}
	return v.Started, v.Finished, nil
}
