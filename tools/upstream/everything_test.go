package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/tools"
)

// These tests run the official reference server
// @modelcontextprotocol/server-everything (TypeScript SDK) as the upstream,
// over stdio and over Streamable HTTP. Nothing in them is a stand-in.

type transportCase struct {
	name string
	cfg  func(t *testing.T, marker string) Config
}

var transports = []transportCase{
	{"stdio", func(t *testing.T, marker string) Config { return stdioConfig(t, "everything", marker) }},
	{"http", func(t *testing.T, marker string) Config {
		return Config{Name: "everything", HTTP: &HTTPConfig{URL: startHTTPEverything(t, marker)},
			Timeouts: Timeouts{Connect: Duration(10 * time.Second)}}
	}},
}

func TestEverythingToolsAndCalls(t *testing.T) {
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newProvider(t, tc.cfg(t, newMarker(t)), Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			reg, err := tools.NewRegistryContext(ctx, p)
			if err != nil {
				t.Fatalf("registry over the upstream: %v", err)
			}

			// tools/list: every tool namespaced, schemas passed through.
			list, err := reg.ListTools(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tool := range list {
				names = append(names, tool.Name)
				if !strings.HasPrefix(tool.Name, "everything.") {
					t.Errorf("tool %q is not namespaced", tool.Name)
				}
			}
			for _, want := range []string{"everything.echo", "everything.get-sum",
				"everything.trigger-long-running-operation", "everything.toggle-simulated-logging"} {
				if !slices.Contains(names, want) {
					t.Errorf("tools/list lacks %q; got %v", want, names)
				}
			}
			_, echo, ok := reg.Lookup("everything.echo")
			if !ok || !strings.Contains(string(echo.InputSchema), `"message"`) {
				t.Errorf("echo's input schema not passed through: %s", echo.InputSchema)
			}
			if !strings.Contains(string(echo.Annotations), `"readOnlyHint":true`) {
				t.Errorf("echo's annotations not passed through: %s", echo.Annotations)
			}

			// Plain calls, through the registry as the executor makes them.
			if got := text(t, call(t, reg, "", "everything.echo", `{"message":"hello upstream"}`)); got != "Echo: hello upstream" {
				t.Errorf("echo: got %q", got)
			}
			if got := text(t, call(t, reg, "s1", "everything.get-sum", `{"a":2,"b":3}`)); got != "The sum of 2 and 3 is 5." {
				t.Errorf("get-sum: got %q", got)
			}
			// The TypeScript SDK reports bad arguments as a tool error: it
			// must stay an isError result, not become a protocol error.
			res := call(t, reg, "s1", "everything.get-sum", `{"a":"two"}`)
			if !res.IsError || !strings.Contains(text(t, res), "validation") {
				t.Errorf("bad arguments: want an isError result about validation, got isError=%v %q", res.IsError, text(t, res))
			}

			// Progress: forwarded in order, all before the call returns.
			rec := &recorder{}
			res, err = reg.CallTool(ctx, tools.Call{Name: "everything.trigger-long-running-operation",
				Arguments: json.RawMessage(`{"duration":0.5,"steps":5}`), ProgressToken: json.RawMessage(`"client-token"`),
				SessionID: "s2"}, rec)
			rec.markReturned()
			if err != nil {
				t.Fatalf("long-running operation: %v", err)
			}
			if !strings.Contains(text(t, res), "Long running operation completed") {
				t.Errorf("long-running operation: got %q", text(t, res))
			}
			time.Sleep(100 * time.Millisecond) // anything late would show up now
			rec.mu.Lock()
			if want := []float64{1, 2, 3, 4, 5}; !slices.Equal(rec.progress, want) {
				t.Errorf("progress: got %v, want %v in this order", rec.progress, want)
			}
			for _, total := range rec.totals {
				if total != 5 {
					t.Errorf("progress total: got %v, want 5", total)
				}
			}
			if rec.late != 0 {
				t.Errorf("%d notifications arrived after CallTool returned", rec.late)
			}
			rec.mu.Unlock()

			// No progress token, no progress.
			rec = &recorder{}
			if _, err := reg.CallTool(ctx, tools.Call{Name: "everything.trigger-long-running-operation",
				Arguments: json.RawMessage(`{"duration":0.1,"steps":2}`)}, rec); err != nil {
				t.Fatal(err)
			}
			if len(rec.progress) != 0 {
				t.Errorf("progress without a token: got %v", rec.progress)
			}
			if st := p.Stats(); st.Breaker != BreakerClosed {
				t.Errorf("breaker after healthy calls: %v", st.Breaker)
			}
		})
	}
}

// Two progress-reporting calls at once on one upstream session: each call
// sees exactly its own notifications, in order.
func TestEverythingConcurrentProgressOnOneSession(t *testing.T) {
	p := newProvider(t, stdioConfig(t, "everything", newMarker(t)), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	recs := []*recorder{{}, {}, {}}
	steps := []int{3, 4, 6}
	for i, rec := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args, _ := json.Marshal(map[string]any{"duration": 0.6, "steps": steps[i]})
			_, err := p.CallTool(ctx, tools.Call{Name: "trigger-long-running-operation", Arguments: args,
				ProgressToken: json.RawMessage(`1`), SessionID: "same"}, rec)
			rec.markReturned()
			if err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	for i, rec := range recs {
		var want []float64
		for s := 1; s <= steps[i]; s++ {
			want = append(want, float64(s))
		}
		if !slices.Equal(rec.progress, want) || rec.late != 0 {
			t.Errorf("call %d: progress %v (late %d), want %v", i, rec.progress, rec.late, want)
		}
	}
	if st := p.Stats(); st.Opened != 1 {
		t.Errorf("one downstream session should use one upstream session, opened %d", st.Opened)
	}
}

// server-everything's toggle-simulated-logging sends a log message right
// away, before its result, on stdio: it must reach the call's notifier.
func TestEverythingLoggingForwarded(t *testing.T) {
	p := newProvider(t, stdioConfig(t, "everything", newMarker(t)), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := &recorder{}
	res, err := p.CallTool(ctx, tools.Call{Name: "toggle-simulated-logging", SessionID: "logs"}, rec)
	rec.markReturned()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text(t, res), "Started simulated") {
		t.Fatalf("toggle: got %q", text(t, res))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.logs) == 0 {
		t.Fatalf("no log message forwarded; events %v", rec.events)
	}
	// (The server words one of them "Alert level-message".)
	levels := regexp.MustCompile(`^(debug|info|notice|warning|error|critical|alert|emergency) ".*level[ -]message"$`)
	for _, l := range rec.logs {
		if !levels.MatchString(l) {
			t.Errorf("unexpected log forwarded: %q", l)
		}
	}
}

// A downstream session gets its own upstream session, never shared. On
// stdio that is a process of its own; server-everything keeps the logging
// toggle per process, so the second toggle in the same session stops what
// the first started, and another session starts afresh.
func TestEverythingSessionsIsolatedStdio(t *testing.T) {
	marker := newMarker(t)
	p := newProvider(t, stdioConfig(t, "everything", marker), Options{})
	toggle := func(session string) string {
		return text(t, call(t, p, session, "toggle-simulated-logging", ""))
	}
	if got := toggle("alice"); !strings.HasPrefix(got, "Started") {
		t.Fatalf("alice first toggle: %q", got)
	}
	if got := toggle("alice"); !strings.HasPrefix(got, "Stopped") {
		t.Fatalf("alice second toggle (same upstream session expected): %q", got)
	}
	if got := toggle("bob"); !strings.HasPrefix(got, "Started") {
		t.Fatalf("bob's toggle saw alice's upstream state: %q", got)
	}
	if got := toggle(""); !strings.HasPrefix(got, "Started") {
		t.Fatalf("a stateless call saw a session's upstream state: %q", got)
	}
	if n := liveProcs(t, marker); n != 3 {
		t.Errorf("live upstream processes: got %d, want 3 (alice, bob, one pooled)", n)
	}
	if st := p.Stats(); st.Bound != 2 || st.Idle != 1 || st.Opened != 3 {
		t.Errorf("stats: %+v, want 2 bound, 1 idle, 3 opened", st)
	}
}

// Over HTTP the upstream names its session in the toggle's answer, and a
// proxy counts initialize requests on the wire.
func TestEverythingSessionsIsolatedHTTP(t *testing.T) {
	proxy := newCountingProxy(t, startHTTPEverything(t, newMarker(t)))
	p := newProvider(t, Config{Name: "everything", HTTP: &HTTPConfig{URL: proxy.url}}, Options{})
	sid := regexp.MustCompile(`for session ([0-9a-f-]{36})`)
	toggle := func(session string) (string, string) {
		got := text(t, call(t, p, session, "toggle-simulated-logging", ""))
		m := sid.FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("no upstream session id in %q", got)
		}
		return got, m[1]
	}
	a1, idA1 := toggle("alice")
	a2, idA2 := toggle("alice")
	b1, idB := toggle("bob")
	if !strings.HasPrefix(a1, "Started") || !strings.HasPrefix(a2, "Stopped") || idA1 != idA2 {
		t.Errorf("alice's calls did not share one upstream session: %q / %q", a1, a2)
	}
	if !strings.HasPrefix(b1, "Started") || idB == idA1 {
		t.Errorf("bob got alice's upstream session %s: %q", idA1, b1)
	}
	if inits, _, _ := proxy.counts(); inits != 2 {
		t.Errorf("initialize requests on the wire: got %d, want 2", inits)
	}
	// Ending a downstream session ends its upstream session (DELETE).
	p.CloseSession("alice")
	waitFor(t, 5*time.Second, "DELETE of alice's upstream session", func() bool {
		_, deletes, _ := proxy.counts()
		return deletes == 1
	})
	if _, idA3 := toggle("alice"); idA3 == idA1 {
		t.Errorf("alice's upstream session survived CloseSession")
	}
}

// The pool bound holds under 50 concurrent calls: stateless calls share at
// most Size processes (counted in /proc, not only by the provider).
func TestEverythingPoolBoundStdio(t *testing.T) {
	marker := newMarker(t)
	cfg := stdioConfig(t, "everything", marker)
	cfg.Pool.Size = 3
	cfg.Timeouts.Acquire = Duration(60 * time.Second)
	p := newProvider(t, cfg, Options{})

	stop := make(chan struct{})
	var maxProcs int
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			maxProcs = max(maxProcs, liveProcs(t, marker))
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	runConcurrent(t, p, 50, func(i int) string { return "" })
	close(stop)
	<-sampled
	st := p.Stats()
	if st.MaxLive > 3 || st.Opened > 3 || maxProcs > 3 {
		t.Errorf("pool of 3 exceeded: max live %d, opened %d, max processes seen %d", st.MaxLive, st.Opened, maxProcs)
	}
	if maxProcs == 0 {
		t.Errorf("the /proc sampler never saw an upstream process; the check cannot fail as written")
	}
}

// 50 concurrent calls of 50 different downstream sessions with a pool of 4:
// every call is answered, idle sessions are evicted to make room, and never
// more than 4 upstream sessions are open (counted on the wire).
func TestEverythingPoolBoundHTTPSessions(t *testing.T) {
	proxy := newCountingProxy(t, startHTTPEverything(t, newMarker(t)))
	p := newProvider(t, Config{Name: "everything", HTTP: &HTTPConfig{URL: proxy.url}, Pool: PoolConfig{Size: 4},
		Timeouts: Timeouts{Acquire: Duration(60 * time.Second)}}, Options{})
	runConcurrent(t, p, 50, func(i int) string { return "user-" + string(rune('A'+i%26)) + string(rune('a'+i/26)) })
	inits, _, maxOpen := proxy.counts()
	if st := p.Stats(); st.MaxLive > 4 || maxOpen > 4 {
		t.Errorf("pool of 4 exceeded: provider max live %d, wire max open %d", st.MaxLive, maxOpen)
	}
	if inits != 50 {
		t.Errorf("50 downstream sessions should have had 50 upstream sessions, initialize seen %d times", inits)
	}
}

// With every slot busy (a bound session in a call cannot be evicted), a
// caller waits up to the acquire timeout, then fails without touching the
// breaker; a caller with a longer wait gets the slot once it frees.
func TestPoolExhausted(t *testing.T) {
	cfg := stdioConfig(t, "everything", newMarker(t))
	cfg.Pool.Size = 1
	cfg.Timeouts.Acquire = Duration(300 * time.Millisecond)
	cfg.Breaker.Failures = 1
	p := newProvider(t, cfg, Options{})
	call(t, p, "busy", "echo", `{"message":"warm"}`)
	done := make(chan error, 1)
	go func() {
		_, err := p.CallTool(context.Background(), tools.Call{Name: "trigger-long-running-operation",
			Arguments: json.RawMessage(`{"duration":1.5,"steps":1}`), SessionID: "busy"}, nil)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	_, err := p.CallTool(context.Background(), tools.Call{Name: "echo", SessionID: "other"}, nil)
	if !errors.Is(err, ErrPoolExhausted) || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("want ErrPoolExhausted after the 300ms acquire timeout, got %v after %s", err, time.Since(start))
	}
	if st := p.Stats(); st.Breaker != BreakerClosed || st.Live != 1 {
		t.Fatalf("after pool exhaustion: %+v, want closed breaker, 1 live session", st)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Now idle, "busy"'s session is evicted for "other".
	if got := text(t, call(t, p, "other", "echo", `{"message":"in"}`)); got != "Echo: in" {
		t.Errorf("after the slot freed: %q", got)
	}
	if st := p.Stats(); st.MaxLive != 1 || st.Opened != 2 {
		t.Errorf("stats %+v: want one slot, two sessions opened in turn", st)
	}
}

func runConcurrent(t *testing.T, p *Provider, n int, session func(int) string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			msg := "m" + string(rune('A'+i%26)) + string(rune('a'+i/26))
			res, err := p.CallTool(ctx, tools.Call{Name: "echo", Arguments: json.RawMessage(`{"message":"` + msg + `"}`),
				SessionID: session(i)}, nil)
			if err != nil {
				t.Errorf("call %d: %v", i, err)
				return
			}
			if got := text(t, res); got != "Echo: "+msg {
				t.Errorf("call %d: got %q", i, got)
			}
		}()
	}
	close(start)
	wg.Wait()
}

// A command that exits at once fails every connect; after Failures of them
// the circuit opens and calls fail fast without spawning anything; after
// OpenFor one probe goes through (and, failing, opens it again).
func TestBreakerStdioCommandExits(t *testing.T) {
	p := newProvider(t, Config{Name: "broken", Stdio: &StdioConfig{Command: "sh", Args: []string{"-c", "exit 3"}},
		Breaker: BreakerConfig{Failures: 3, OpenFor: Duration(400 * time.Millisecond)}}, Options{})
	ctx := context.Background()
	for i := range 3 {
		_, err := p.CallTool(ctx, tools.Call{Name: "echo"}, nil)
		var ue *UnavailableError
		if !errors.As(err, &ue) || ue.Op != "connect" || errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("call %d: want a connect UnavailableError, got %v", i, err)
		}
	}
	if st := p.Stats(); st.Breaker != BreakerOpen || st.Opened != 3 {
		t.Fatalf("after 3 failures: %+v, want open breaker and 3 spawns", st)
	}
	start := time.Now()
	_, err := p.CallTool(ctx, tools.Call{Name: "echo"}, nil)
	if !errors.Is(err, ErrCircuitOpen) || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("open circuit: want a fast ErrCircuitOpen, got %v after %s", err, time.Since(start))
	}
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.RetryAfter <= 0 || !strings.Contains(err.Error(), "next probe in") ||
		!strings.Contains(err.Error(), "last failure: initialize") {
		t.Errorf("open-circuit error should say when to retry and why: %v", err)
	}
	if st := p.Stats(); st.Opened != 3 {
		t.Errorf("an open circuit spawned a process: opened %d", st.Opened)
	}
	time.Sleep(450 * time.Millisecond)
	if st := p.Stats(); st.Breaker != BreakerHalfOpen {
		t.Fatalf("after the cool-down: %v, want half-open", st.Breaker)
	}
	_, err = p.CallTool(ctx, tools.Call{Name: "echo"}, nil)
	if err == nil || errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("half-open probe: want the probe's own failure, got %v", err)
	}
	if st := p.Stats(); st.Breaker != BreakerOpen || st.Opened != 4 {
		t.Errorf("after a failed probe: %+v, want open again after exactly one more spawn", st)
	}
}

// Concurrent first calls of one downstream session share one dial; when it
// fails, it is one failure for the breaker, not one per waiting call.
func TestConcurrentFirstCallsShareOneDial(t *testing.T) {
	p := newProvider(t, Config{Name: "broken", Stdio: &StdioConfig{Command: "sh", Args: []string{"-c", "sleep 0.3; exit 3"}},
		Breaker: BreakerConfig{Failures: 2}}, Options{})
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.CallTool(context.Background(), tools.Call{Name: "echo", SessionID: "same"}, nil); err == nil {
				t.Error("a call to a dead upstream succeeded")
			}
		}()
	}
	wg.Wait()
	if st := p.Stats(); st.Opened != 1 || st.Breaker != BreakerClosed {
		t.Errorf("stats %+v: want one dial and one failure (breaker still closed)", st)
	}
}

// An HTTP upstream on a closed loopback port opens the circuit; once the
// server is up and the cool-down is over, the probe closes it.
func TestBreakerHTTPClosedPortRecovers(t *testing.T) {
	port := freePort(t)
	p := newProvider(t, Config{Name: "everything",
		HTTP:     &HTTPConfig{URL: "http://127.0.0.1:" + itoa(port) + "/mcp"},
		Timeouts: Timeouts{Connect: Duration(5 * time.Second)},
		Breaker:  BreakerConfig{Failures: 2, OpenFor: Duration(300 * time.Millisecond)}}, Options{})
	ctx := context.Background()
	for i := range 2 {
		if _, err := p.CallTool(ctx, tools.Call{Name: "echo", Arguments: json.RawMessage(`{"message":"x"}`)}, nil); err == nil {
			t.Fatalf("call %d to a closed port succeeded", i)
		}
	}
	if _, err := p.CallTool(ctx, tools.Call{Name: "echo"}, nil); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("want ErrCircuitOpen, got %v", err)
	}
	_, _ = startHTTPEverythingOn(t, port, newMarker(t))
	time.Sleep(350 * time.Millisecond)
	res, err := p.CallTool(ctx, tools.Call{Name: "echo", Arguments: json.RawMessage(`{"message":"back"}`)}, nil)
	if err != nil {
		t.Fatalf("probe after recovery: %v", err)
	}
	if got := text(t, res); got != "Echo: back" {
		t.Errorf("probe: got %q", got)
	}
	if st := p.Stats(); st.Breaker != BreakerClosed {
		t.Errorf("after a successful probe: %v, want closed", st.Breaker)
	}
}

// A stdio upstream that died while idle is replaced when next needed,
// without failing the call that finds it dead.
func TestStdioCrashedProcessReplaced(t *testing.T) {
	marker := newMarker(t)
	p := newProvider(t, stdioConfig(t, "everything", marker), Options{})
	call(t, p, "a", "echo", `{"message":"x"}`)
	call(t, p, "", "echo", `{"message":"x"}`)
	p.pool.mu.Lock()
	var pids []int
	for s := range p.pool.all {
		pids = append(pids, s.proc.pid)
	}
	p.pool.mu.Unlock()
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the killed processes to be reaped", func() bool {
		p.pool.mu.Lock()
		defer p.pool.mu.Unlock()
		for s := range p.pool.all {
			if !s.dead() {
				return false
			}
		}
		return true
	})
	for _, s := range []string{"a", ""} {
		if got := text(t, call(t, p, s, "echo", `{"message":"y"}`)); got != "Echo: y" {
			t.Errorf("session %q after its process died: %q", s, got)
		}
	}
	if st := p.Stats(); st.Opened != 4 || st.Breaker != BreakerClosed {
		t.Errorf("stats %+v: want both sessions replaced, breaker closed", st)
	}
}

// An HTTP upstream that crashed and came back has forgotten our sessions.
// The SDK notices when its standalone stream, resumed, is refused; from
// then on the session is dead and the next call of that downstream session
// gets a new upstream session instead of failing on the old one. (A call
// that races ahead of the SDK noticing fails, and is not repeated: we
// cannot know whether the upstream ran it.)
func TestHTTPUpstreamRestart(t *testing.T) {
	port := freePort(t)
	url, kill := startHTTPEverythingOn(t, port, newMarker(t))
	p := newProvider(t, Config{Name: "everything", HTTP: &HTTPConfig{URL: url}}, Options{})
	call(t, p, "a", "echo", `{"message":"before"}`)
	p.pool.mu.Lock()
	old := p.pool.bound["a"]
	p.pool.mu.Unlock()
	ended := make(chan struct{})
	go func() { _ = old.cs.Wait(); close(ended) }()
	kill()
	startHTTPEverythingOn(t, port, newMarker(t))
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the SDK did not give up the session the restarted upstream forgot within 20s")
	}
	// The provider's own watcher sees the end a moment later.
	waitFor(t, 5*time.Second, "the pool to see the session dead", old.dead)
	if got := text(t, call(t, p, "a", "echo", `{"message":"after"}`)); got != "Echo: after" {
		t.Errorf("after restart: %q", got)
	}
	if st := p.Stats(); st.Opened != 2 || st.Live != 1 || st.Breaker != BreakerClosed {
		t.Errorf("stats %+v: want the stale session replaced by one new one", st)
	}
}

// A call that misses the upstream's call timeout fails as unavailable,
// counts for the breaker, and its (possibly wedged) process is replaced.
func TestCallTimeoutDiscardsSession(t *testing.T) {
	marker := newMarker(t)
	cfg := stdioConfig(t, "everything", marker)
	cfg.Timeouts.Call = Duration(300 * time.Millisecond)
	cfg.Breaker = BreakerConfig{Failures: 2, OpenFor: Duration(time.Minute)}
	p := newProvider(t, cfg, Options{})
	ctx := context.Background()
	long := tools.Call{Name: "trigger-long-running-operation", Arguments: json.RawMessage(`{"duration":5,"steps":5}`)}
	start := time.Now()
	_, err := p.CallTool(ctx, long, nil)
	if !errors.Is(err, ErrTimeout) || time.Since(start) > 3*time.Second {
		t.Fatalf("want ErrTimeout after ~300ms, got %v after %s", err, time.Since(start))
	}
	waitFor(t, 10*time.Second, "the timed-out process to be reaped", func() bool { return liveProcs(t, marker) == 0 })
	if _, err := p.CallTool(ctx, long, nil); !errors.Is(err, ErrTimeout) {
		t.Fatalf("second call: want ErrTimeout, got %v", err)
	}
	if st := p.Stats(); st.Breaker != BreakerOpen || st.Opened != 2 {
		t.Errorf("after 2 timeouts: %+v, want open breaker, 2 sessions opened", st)
	}
}

// A client's cancellation ends the call at once, is no upstream failure,
// and leaves the upstream session usable.
func TestCancellationIsNotAFailure(t *testing.T) {
	marker := newMarker(t)
	cfg := stdioConfig(t, "everything", marker)
	cfg.Breaker.Failures = 1
	p := newProvider(t, cfg, Options{})
	call(t, p, "c", "echo", `{"message":"warm"}`) // cancel a call, not the connect
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := p.CallTool(ctx, tools.Call{Name: "trigger-long-running-operation",
		Arguments: json.RawMessage(`{"duration":10,"steps":2}`), SessionID: "c"}, nil)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Fatalf("want context.Canceled soon after 300ms, got %v after %s", err, time.Since(start))
	}
	if st := p.Stats(); st.Breaker != BreakerClosed || st.Bound != 1 {
		t.Fatalf("after a cancellation: %+v, want closed breaker and the session kept", st)
	}
	if got := text(t, call(t, p, "c", "echo", `{"message":"still here"}`)); got != "Echo: still here" {
		t.Errorf("after cancellation: %q", got)
	}
	if st := p.Stats(); st.Opened != 1 {
		t.Errorf("the session was replaced after a cancellation: opened %d", st.Opened)
	}
}

// Close stops every process, including grandchildren started by a wrapper
// (as npx does), and returns only when they are gone.
func TestCloseReapsProcesses(t *testing.T) {
	ev := serverEverything(t)
	marker := newMarker(t)
	// sh stays the parent (it has more to do after node), like npx.
	cfg := Config{Name: "wrapped", Stdio: &StdioConfig{Command: "sh",
		Args: []string{"-c", `"$0" "$1"; echo wrapper done >&2`, ev.node, ev.entry},
		Env:  map[string]string{markerVar: marker}},
		Timeouts: Timeouts{Shutdown: Duration(500 * time.Millisecond)}}
	p, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, s := range []string{"a", "b", "c", ""} {
		call(t, p, s, "echo", `{"message":"x"}`)
	}
	// A call still running when Close comes.
	running := make(chan error, 1)
	go func() {
		_, err := p.CallTool(context.Background(), tools.Call{Name: "trigger-long-running-operation",
			Arguments: json.RawMessage(`{"duration":30,"steps":2}`), SessionID: "a"}, nil)
		running <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if n := liveProcs(t, marker); n != 8 {
		t.Fatalf("before Close: %d processes, want 8 (4 sessions x sh+node)", n)
	}
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %s", time.Since(start))
	// Close has SIGKILLed the whole group; a grandchild that the kernel has
	// not finished tearing down may still show in /proc for a moment on a
	// loaded machine, so allow it a little time, not a lingering process.
	waitFor(t, 3*time.Second, "every upstream process to be gone after Close", func() bool {
		return liveProcs(t, marker) == 0
	})
	select {
	case err := <-running:
		if err == nil {
			t.Errorf("a call in flight during Close succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Errorf("a call in flight during Close never returned")
	}
	if _, err := p.CallTool(context.Background(), tools.Call{Name: "echo"}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("call after Close: want ErrClosed, got %v", err)
	}
}

// Idle sessions (bound and pooled) are closed after the idle timeout, and
// the next call opens a fresh one.
func TestIdleSessionsClosed(t *testing.T) {
	marker := newMarker(t)
	cfg := stdioConfig(t, "everything", marker)
	// Well above two node start-ups even on a loaded machine: the two
	// sessions must both be alive when they are counted.
	cfg.Timeouts.Idle = Duration(6 * time.Second)
	p := newProvider(t, cfg, Options{})
	call(t, p, "a", "echo", `{"message":"x"}`)
	call(t, p, "", "echo", `{"message":"x"}`)
	if n := liveProcs(t, marker); n != 2 {
		t.Fatalf("%d processes, want 2", n)
	}
	waitFor(t, 15*time.Second, "idle sessions to close", func() bool {
		return liveProcs(t, marker) == 0 && p.Stats().Live == 0
	})
	if got := text(t, call(t, p, "a", "echo", `{"message":"again"}`)); got != "Echo: again" {
		t.Errorf("after idle close: %q", got)
	}
}

// A stdio upstream sees only the safe part of mcpstream's environment plus
// its configured env, unless it inherits everything.
func TestStdioEnvironment(t *testing.T) {
	t.Setenv("MCPSTREAM_TEST_SECRET", "hunter2")
	for _, inherit := range []bool{false, true} {
		cfg := stdioConfig(t, "everything", newMarker(t))
		cfg.Stdio.Env["CONFIGURED"] = "yes"
		cfg.Stdio.InheritEnv = inherit
		p := newProvider(t, cfg, Options{})
		out := text(t, call(t, p, "", "get-env", ""))
		var env map[string]string
		if err := json.Unmarshal([]byte(out), &env); err != nil {
			t.Fatalf("get-env output %q: %v", out, err)
		}
		if env["CONFIGURED"] != "yes" || env["PATH"] == "" {
			t.Errorf("inherit=%v: configured env or PATH missing: %v", inherit, env)
		}
		if got := env["MCPSTREAM_TEST_SECRET"]; (got == "hunter2") != inherit {
			t.Errorf("inherit=%v: the parent's secret is %q in the upstream", inherit, got)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
