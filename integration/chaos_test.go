package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdkjsonrpc "github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpstream/mcpstream/gateway"
	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools/counting"
)

// The chaos test: every role in its own OS process, clients retrying with
// the same request identity, executors and processors killed with SIGKILL
// mid-load. The counting tool's own log is the ground truth: each line is
// one entry into the tool body, written before the body does anything else.

const (
	chaosClients   = 50
	chaosCalls     = 10000
	chaosPerClient = chaosCalls / chaosClients
	// chaosAttemptTimeout is one HTTP attempt. A SIGKILLed processor's
	// partitions are stuck until its restart rejoins the group (or the
	// 12 s session timeout) plus goka's 5 s rebalance pause, so calls on
	// them time out and are retried.
	chaosAttemptTimeout = 8 * time.Second
	chaosMaxAttempts    = 10
	// chaosLoadTimeout bounds the client phase; the whole test (build,
	// start, load, settle) stays well under four minutes.
	chaosLoadTimeout = 120 * time.Second
	// chaosMaxInterruptedPerMille bounds the calls answered -31003: only
	// calls in flight on the killed executor may get it.
	chaosMaxInterruptedPerMille = 10
)

// callOutcome is how one logical call (all its attempts) ended.
type callOutcome int

const (
	outcomeUnanswered  callOutcome = iota // no final answer within the attempts
	outcomeResult                         // a result carrying the call's own call_id
	outcomeInterrupted                    // JSON-RPC error -31003
	outcomeWrong                          // any other final answer
)

// attempt is what one try of a call produced. retry is set for failures
// that say nothing about the call (transport errors, timeouts, 503): the
// client must try again with the same identity.
type attempt struct {
	outcome callOutcome
	detail  string
	retry   bool
}

func retryable(format string, args ...any) attempt {
	return attempt{retry: true, detail: fmt.Sprintf(format, args...)}
}

// judgeRPC classifies a final JSON-RPC answer to a tally call.
func judgeRPC(callID string, code int, message string, text string, isError bool) attempt {
	switch {
	case code == jsonrpc.CodeCallInterrupted:
		return attempt{outcome: outcomeInterrupted, detail: message}
	case code == jsonrpc.CodeTimeout || code == jsonrpc.CodeInternalError && strings.Contains(message, "retry"):
		// The gateway's own "no reply yet / not accepted, retry with the
		// same id" answers.
		return retryable("json-rpc %d: %s", code, message)
	case code != 0:
		return attempt{outcome: outcomeWrong, detail: fmt.Sprintf("json-rpc error %d: %s", code, message)}
	case isError || text != counting.ResultText(callID):
		return attempt{outcome: outcomeWrong, detail: fmt.Sprintf("result isError=%v text %q, want %q", isError, text, counting.ResultText(callID))}
	default:
		return attempt{outcome: outcomeResult}
	}
}

// sdkRejected is the go-sdk's code for a request its transport could not
// deliver or read the answer of (jsonrpc2.ErrRejected): a transport
// failure, to retry like any other.
const sdkRejected = -32005

// rawSession is a 2025-11-25 session driven over plain HTTP. The go-sdk
// client gives every request a fresh JSON-RPC id, so it cannot retry a call
// under the same identity (session + id); this client can, which is what a
// real client that lost a response does.
type rawSession struct {
	hc       *http.Client
	endpoint string
	sid      string
}

func (s *rawSession) post(ctx context.Context, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if s.sid != "" {
		req.Header.Set("Mcp-Session-Id", s.sid)
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	return s.hc.Do(req)
}

// initialize opens the session (initialize, then notifications/initialized).
func (s *rawSession) initialize(ctx context.Context) error {
	resp, err := s.post(ctx, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"chaos","version":"1"}}}`)
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Mcp-Session-Id") == "" {
		return fmt.Errorf("initialize: HTTP %d %s", resp.StatusCode, b)
	}
	s.sid = resp.Header.Get("Mcp-Session-Id")
	resp, err = s.post(ctx, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if err != nil {
		return fmt.Errorf("notifications/initialized: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("notifications/initialized: HTTP %d", resp.StatusCode)
	}
	return nil
}

// rpcAnswer is the part of a JSON-RPC response a tally call looks at.
type rpcAnswer struct {
	ID     json.RawMessage `json:"id"`
	Result *struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// call sends tools/call with JSON-RPC id rpcID; calling it again with the
// same rpcID is a retry of the same request.
func (s *rawSession) call(ctx context.Context, rpcID int, tool, callID string, sleepMS int) attempt {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"call_id":%q,"sleep_ms":%d}}}`,
		rpcID, tool, callID, sleepMS)
	resp, err := s.post(ctx, body)
	if err != nil {
		return retryable("POST: %v", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout || resp.StatusCode == http.StatusBadGateway:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return retryable("HTTP %d: %s", resp.StatusCode, b)
	case resp.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return attempt{outcome: outcomeWrong, detail: fmt.Sprintf("HTTP %d: %s", resp.StatusCode, b)}
	}
	var ans *rpcAnswer
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		ans, err = readSSEAnswer(resp.Body)
	} else {
		ans = new(rpcAnswer)
		err = json.NewDecoder(resp.Body).Decode(ans)
	}
	if err != nil {
		return retryable("reading the answer: %v", err)
	}
	if string(ans.ID) != fmt.Sprint(rpcID) {
		return attempt{outcome: outcomeWrong, detail: fmt.Sprintf("answer carries id %s, want %d", ans.ID, rpcID)}
	}
	if ans.Error != nil {
		return judgeRPC(callID, ans.Error.Code, ans.Error.Message, "", false)
	}
	if ans.Result == nil || len(ans.Result.Content) == 0 || ans.Result.Content[0].Type != "text" {
		return attempt{outcome: outcomeWrong, detail: "answer has neither error nor a text result"}
	}
	return judgeRPC(callID, 0, "", ans.Result.Content[0].Text, ans.Result.IsError)
}

// readSSEAnswer returns the first JSON-RPC response on an SSE stream,
// skipping notifications and priming events.
func readSSEAnswer(r io.Reader) (*rpcAnswer, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var data bytes.Buffer
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "data:"); ok {
			data.WriteString(strings.TrimPrefix(rest, " "))
			continue
		}
		if line != "" || data.Len() == 0 {
			continue
		}
		var ans rpcAnswer
		err := json.Unmarshal(data.Bytes(), &ans)
		data.Reset()
		if err != nil {
			return nil, fmt.Errorf("decoding SSE data: %w", err)
		}
		if len(ans.ID) > 0 && (ans.Result != nil || ans.Error != nil) {
			return &ans, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, io.ErrUnexpectedEOF
}

// sdkStateless calls through the official go-sdk client on the stateless
// 2026-07-28 revision. There a request's identity for retries is the
// idempotency key in _meta (the gateway honours the key only on stateless
// requests), so a retry sends the same key with a new JSON-RPC id.
type sdkStateless struct {
	hc       *http.Client
	endpoint string
	cs       *mcp.ClientSession
}

func (c *sdkStateless) close() {
	if c.cs != nil {
		_ = c.cs.Close()
		c.cs = nil
	}
}

// connect runs discovery unless the client already has a live connection.
func (c *sdkStateless) connect(ctx context.Context) error {
	if c.cs != nil {
		return nil
	}
	cl := mcp.NewClient(&mcp.Implementation{Name: "chaos-sdk", Version: "1"}, nil)
	cs, err := cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: c.endpoint, HTTPClient: c.hc, MaxRetries: -1},
		&mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"})
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	if v := cs.InitializeResult().ProtocolVersion; v != "2026-07-28" {
		// The SDK falls back to initialize when server/discover fails,
		// which it does when discover's partition is stalled by a kill.
		// The call must stay stateless: its identity is the key.
		_ = cs.Close()
		return fmt.Errorf("negotiated %s, want 2026-07-28 (discovery failed?)", v)
	}
	c.cs = cs
	return nil
}

func (c *sdkStateless) call(ctx context.Context, tool, callID string, sleepMS int) attempt {
	if err := c.connect(ctx); err != nil {
		return retryable("%v", err)
	}
	res, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: tool,
		Arguments: map[string]any{"call_id": callID, "sleep_ms": sleepMS},
		Meta:      mcp.Meta{gateway.IdempotencyKeyMeta: callID}})
	var werr *sdkjsonrpc.Error
	switch {
	case err == nil:
		text := ""
		if len(res.Content) > 0 {
			if tc, ok := res.Content[0].(*mcp.TextContent); ok {
				text = tc.Text
			}
		}
		return judgeRPC(callID, 0, "", text, res.IsError)
	case errors.As(err, &werr) && werr.Code != sdkRejected:
		return judgeRPC(callID, int(werr.Code), werr.Message, "", false)
	case strings.Contains(err.Error(), "tool call interrupted: executor"):
		// A code the go-sdk reserves comes back as "connection closed:
		// ...: <message>" without it (the platform used -32003 before);
		// the message is the platform's interruption text.
		return judgeRPC(callID, jsonrpc.CodeCallInterrupted, err.Error(), "", false)
	default:
		// A transport failure may leave the SDK's connection broken; the
		// next attempt starts a new one (server/discover is one request).
		c.close()
		return retryable("%v", err)
	}
}

// flakyNet loses the first HTTP exchange of chosen calls, so every run
// retries those calls under the same identity whatever the timing of the
// kills: a "lost" call's answer is read and thrown away (its retry finds
// the call completed), a "cut" call's connection is closed 5 ms after the
// request went out (its retry finds it running, or not yet accepted).
type flakyNet struct {
	base http.RoundTripper
	lose sync.Map // call_id -> struct{}: drop the answer once
	cut  sync.Map // call_id -> struct{}: cut the exchange once
	hits atomic.Int64
}

var callIDRE = regexp.MustCompile(`"call_id":"([^"]+)"`)

func (f *flakyNet) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Method != http.MethodPost {
		return f.base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	m := callIDRE.FindSubmatch(body)
	if m == nil {
		return f.base.RoundTrip(req)
	}
	id := string(m[1])
	if _, ok := f.lose.LoadAndDelete(id); ok {
		f.hits.Add(1)
		resp, err := f.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("flakyNet: answer to %s lost (HTTP %d)", id, resp.StatusCode)
	}
	if _, ok := f.cut.LoadAndDelete(id); ok {
		f.hits.Add(1)
		ctx, cancel := context.WithTimeout(req.Context(), 5*time.Millisecond)
		defer cancel()
		resp, err := f.base.RoundTrip(req.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("flakyNet: exchange of %s cut: %w", id, err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("flakyNet: exchange of %s cut: %w", id, err)
		}
		return nil, fmt.Errorf("flakyNet: answer to %s arrived within 5ms, dropped (HTTP %d)", id, resp.StatusCode)
	}
	return f.base.RoundTrip(req)
}

// chaosCluster is the platform as separate OS processes.
type chaosCluster struct {
	t       *testing.T
	bin     string
	brokers string
	logPath string
	mu      sync.Mutex
	procs   map[string]*proc
	ops     map[string]string
}

func (c *chaosCluster) args(name string) []string {
	switch name[0] {
	case 'p':
		// Processors need the counting tools in their registry (tools/list,
		// validation) but run none: every job goes to the three executors.
		return []string{"processor", "--brokers", c.brokers, "--instance-id", name, "--with-executor=false", "--counting-tool-log", c.logPath}
	case 'e':
		return []string{"executor", "--brokers", c.brokers, "--instance-id", name, "--counting-tool-log", c.logPath}
	default:
		return []string{"gateway", "--brokers", c.brokers, "--instance-id", name, "--listen", "127.0.0.1:0"}
	}
}

// start runs the named role and returns without waiting for it.
func (c *chaosCluster) start(name string) *proc {
	p := startProc(c.t, c.bin, name, c.args(name)...)
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	return p
}

// awaitReady waits for the role's ready line and records its ops or MCP
// URL. Unlike proc.await it does not end the test, so the kill script's
// goroutine can use it.
func (c *chaosCluster) awaitReady(name string, p *proc) (string, error) {
	re := opsRE
	if name[0] == 'g' {
		re = mcpRE
	}
	deadline := time.After(90 * time.Second)
	for {
		select {
		case l := <-p.line:
			if m := re.FindStringSubmatch(l); m != nil {
				c.mu.Lock()
				c.ops[name] = m[1]
				c.mu.Unlock()
				return m[1], nil
			}
		case <-p.done:
			return "", fmt.Errorf("%s exited before it was ready", name)
		case <-deadline:
			return "", fmt.Errorf("%s not ready within 90s", name)
		}
	}
}

// kill sends SIGKILL to the role's process group and waits for it to die.
func (c *chaosCluster) kill(name string) {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	p.signal(syscall.SIGKILL)
	<-p.done
}

// executorJobs reads how many tally jobs an executor finished, from its
// metrics; -1 when they cannot be read. For the log only.
func executorJobs(opsURL string) int {
	resp, err := http.Get(opsURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	n := 0.0
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "mcpstream_executor_jobs_total{") && strings.Contains(l, `tool="tally"`) {
			var v float64
			if _, err := fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &v); err == nil {
				n += v
			}
		}
	}
	return int(n)
}

type chaosRecord struct {
	outcome  callOutcome
	detail   string
	attempts int
	latency  time.Duration
	sent     time.Duration // first attempt, since the load started: which kill a failure is near
}

// TestChaos: 1 broker, 2 gateways, 2 processors and 3 executors as separate
// processes; 50 clients make 10,000 calls of the non-idempotent tally tool,
// retrying with the same identity, while one executor and then one
// processor are SIGKILLed and restarted. Every call must be answered, with
// its own result or -31003; the tool's log must show each call answered
// with a result executed exactly once and no call executed twice.
func TestChaos(t *testing.T) {
	testStart := time.Now()
	root := conformanceModuleRoot(t)
	bin := conformanceBuildBinary(t, root)
	dir := t.TempDir()
	c := &chaosCluster{t: t, bin: bin, logPath: filepath.Join(dir, "executions.log"), procs: map[string]*proc{}, ops: map[string]string{}}

	broker := startProc(t, bin, "broker", "broker", "--broker-port", "0", "--data-dir", filepath.Join(dir, "kafka"))
	c.brokers = broker.await(t, brokersRE, 60*time.Second)
	roles := []string{"p1", "p2", "e1", "e2", "e3", "g1", "g2"}
	started := map[string]*proc{}
	for _, name := range roles {
		started[name] = c.start(name)
	}
	for _, name := range roles {
		if _, err := c.awaitReady(name, started[name]); err != nil {
			t.Fatal(err)
		}
	}
	gateways := []string{c.ops["g1"], c.ops["g2"]}
	t.Logf("cluster up after %s: broker %s, gateways %v", time.Since(testStart).Round(time.Millisecond), c.brokers, gateways)

	// One call through each gateway before the load: a platform that runs
	// nothing fails here, in seconds, not after the whole load timeout.
	warmups := []string{"warmup-g1", "warmup-g2"}
	for i, id := range warmups {
		s := &rawSession{hc: &http.Client{}, endpoint: gateways[i]}
		wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := s.initialize(wctx); err != nil {
			wcancel()
			t.Fatalf("warm-up through %s: %v", gateways[i], err)
		}
		a := s.call(wctx, 1, counting.ToolTally, id, 0)
		wcancel()
		if a.retry || a.outcome != outcomeResult {
			t.Fatalf("warm-up call through %s: %s", gateways[i], a.detail)
		}
	}

	// Every call of every client, indexed client*chaosPerClient+i.
	records := make([]chaosRecord, chaosCalls)
	callID := func(client, i int) string { return fmt.Sprintf("c%02d-%03d", client, i) }
	var answered, retries atomic.Int64

	ctx, cancel := context.WithTimeout(context.Background(), chaosLoadTimeout)
	defer cancel()

	// Clients are ready before the clock starts: sessions are opened (or,
	// for the SDK clients, discovery done) outside the load window.
	type client struct {
		raw *rawSession
		sdk *sdkStateless
	}
	clients := make([]client, chaosClients)
	var setup sync.WaitGroup
	setupErrs := make([]error, chaosClients)
	flaky := make([]*flakyNet, chaosClients)
	for i := range clients {
		rr := newRoundRobin(gateways[i%2], gateways[(i+1)%2])
		// 10% of the calls lose their first exchange on purpose: half the
		// answer, half the connection 5 ms after the request.
		flaky[i] = &flakyNet{base: rr}
		for j := 7; j < chaosPerClient; j += 20 {
			flaky[i].lose.Store(callID(i, j), struct{}{})
			flaky[i].cut.Store(callID(i, j+6), struct{}{})
		}
		if i%2 == 0 {
			clients[i].raw = &rawSession{hc: &http.Client{Transport: flaky[i]}, endpoint: gateways[i%2]}
			setup.Go(func() {
				ictx, icancel := context.WithTimeout(ctx, 30*time.Second)
				defer icancel()
				setupErrs[i] = clients[i].raw.initialize(ictx)
			})
		} else {
			// The attempt timeout is the HTTP client's, not a context
			// deadline: an expired context makes the SDK send
			// notifications/cancelled, which would cancel the very call the
			// retry wants the answer of.
			clients[i].sdk = &sdkStateless{hc: &http.Client{Transport: flaky[i], Timeout: chaosAttemptTimeout}, endpoint: gateways[i%2]}
			setup.Go(func() {
				ictx, icancel := context.WithTimeout(ctx, 30*time.Second)
				defer icancel()
				setupErrs[i] = clients[i].sdk.connect(ictx)
			})
		}
	}
	setup.Wait()
	if err := errors.Join(setupErrs...); err != nil {
		t.Fatalf("opening sessions: %v", err)
	}

	loadStart := time.Now()
	var wg sync.WaitGroup
	for ci := range clients {
		cl := clients[ci]
		wg.Go(func() {
			if cl.sdk != nil {
				defer cl.sdk.close()
			}
			for i := 0; i < chaosPerClient; i++ {
				id := callID(ci, i)
				sleepMS := (i % 4) * 5
				rec := &records[ci*chaosPerClient+i]
				start := time.Now()
				rec.sent = start.Sub(loadStart)
				for n := 1; ; n++ {
					var a attempt
					if cl.raw != nil {
						actx, acancel := context.WithTimeout(ctx, chaosAttemptTimeout)
						a = cl.raw.call(actx, i+1, counting.ToolTally, id, sleepMS)
						acancel()
					} else {
						// The context only backs up the HTTP timeout.
						actx, acancel := context.WithTimeout(ctx, chaosAttemptTimeout+10*time.Second)
						a = cl.sdk.call(actx, counting.ToolTally, id, sleepMS)
						acancel()
					}
					rec.attempts, rec.detail = n, a.detail
					if !a.retry {
						rec.outcome, rec.latency = a.outcome, time.Since(start)
						answered.Add(1)
						break
					}
					if n == chaosMaxAttempts || ctx.Err() != nil {
						break // stays outcomeUnanswered
					}
					retries.Add(1)
					select {
					case <-ctx.Done():
					case <-time.After(min(time.Duration(n)*100*time.Millisecond, time.Second)):
					}
				}
			}
		})
	}

	// The kill script. Each kill happens at a call count, so it lands
	// while calls are in flight however fast the platform is.
	var killLog []string
	type killMark struct {
		name string
		at   time.Duration // since loadStart
	}
	var kills []killMark
	killDone := make(chan struct{})
	go func() {
		defer close(killDone)
		waitFor := func(n int64) bool {
			for answered.Load() < n {
				select {
				case <-ctx.Done():
					return false
				case <-time.After(20 * time.Millisecond):
				}
			}
			return true
		}
		note := func(format string, args ...any) {
			execs, _ := counting.ReadCounts(c.logPath)
			killLog = append(killLog, fmt.Sprintf("%6.1fs answered %5d, executions %5d: ", time.Since(loadStart).Seconds(), answered.Load(), execs.Total())+fmt.Sprintf(format, args...))
		}
		for _, step := range []struct {
			name  string
			after int64
		}{{"e1", chaosCalls / 10}, {"p1", chaosCalls * 4 / 10}} {
			if !waitFor(step.after) || answered.Load() >= chaosCalls {
				note("load ended before %s could be killed", step.name)
				return
			}
			jobs := ""
			if step.name[0] == 'e' {
				jobs = fmt.Sprintf(" (it had finished %d tally jobs)", executorJobs(c.ops[step.name]))
			}
			c.kill(step.name)
			kills = append(kills, killMark{step.name, time.Since(loadStart)})
			note("SIGKILL %s%s", step.name, jobs)
			time.Sleep(3 * time.Second)
			p := c.start(step.name)
			note("restarting %s", step.name)
			if _, err := c.awaitReady(step.name, p); err != nil {
				note("%v", err)
				return
			}
			note("%s ready again", step.name)
		}
	}()

	wg.Wait()
	loadTime := time.Since(loadStart)
	flakes := int64(0)
	for _, f := range flaky {
		flakes += f.hits.Load()
	}
	cancel()
	<-killDone

	// A duplicate execution can come after every caller has its answer (a
	// job re-dispatched by a partition's new owner): count only once the
	// log has been still for a while.
	var counts counting.Counts
	var stable time.Duration
	for settle := time.Now(); ; {
		prev := counts.Total()
		var err error
		if counts, err = counting.ReadCounts(c.logPath); err != nil {
			t.Fatal(err)
		}
		if counts.Total() == prev && counts.Total() > 0 {
			stable += 500 * time.Millisecond
		} else {
			stable = 0
		}
		if stable >= 3*time.Second || time.Since(settle) > 20*time.Second {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}

	byOutcome := map[callOutcome]int{}
	var latencies []time.Duration
	var wrong, unanswered, lostResults, interruptedRan []string
	expected := map[string]bool{warmups[0]: true, warmups[1]: true}
	for ci := 0; ci < chaosClients; ci++ {
		for i := 0; i < chaosPerClient; i++ {
			id, rec := callID(ci, i), records[ci*chaosPerClient+i]
			expected[id] = true
			byOutcome[rec.outcome]++
			switch rec.outcome {
			case outcomeResult:
				latencies = append(latencies, rec.latency)
				if counts[id] == 0 {
					lostResults = append(lostResults, id)
				}
			case outcomeInterrupted:
				if counts[id] > 0 {
					interruptedRan = append(interruptedRan, id)
				}
			case outcomeWrong:
				wrong = append(wrong, fmt.Sprintf("%s: %s", id, rec.detail))
			case outcomeUnanswered:
				unanswered = append(unanswered, fmt.Sprintf("%s after %d attempts: %s", id, rec.attempts, rec.detail))
			}
		}
	}
	repeated := counts.Repeated()
	extra := 0
	var repeatedIDs, strangers []string
	// Attribute each repeat to the first kill after the call was sent: the
	// kill that caught it in flight.
	byKill := map[string]int{}
	for id, n := range repeated {
		extra += n - 1
		cause := "no kill"
		var ci, i int
		if _, err := fmt.Sscanf(id, "c%02d-%03d", &ci, &i); err == nil && ci < chaosClients && i < chaosPerClient {
			for _, k := range kills {
				if records[ci*chaosPerClient+i].sent <= k.at {
					cause = k.name
					break
				}
			}
		}
		byKill[cause]++
		repeatedIDs = append(repeatedIDs, fmt.Sprintf("%s x%d (%s)", id, n, outcomeName(records, id, callID)))
	}
	for id := range counts {
		if !expected[id] {
			strangers = append(strangers, id)
		}
	}
	sort.Strings(repeatedIDs)
	slices.Sort(latencies)

	t.Logf("kills:\n  %s", strings.Join(killLog, "\n  "))
	t.Logf("chaos: %d calls from %d clients in %s (%.0f calls/s); results %d, -31003 %d, wrong %d, unanswered %d; "+
		"%d retries (%d first exchanges lost on purpose); %d executions of %d call ids; %d call ids executed more than once (%d extra executions); "+
		"latency p50 %s p99 %s max %s; whole test %s",
		chaosCalls, chaosClients, loadTime.Round(time.Millisecond), float64(chaosCalls)/loadTime.Seconds(),
		byOutcome[outcomeResult], byOutcome[outcomeInterrupted], len(wrong), len(unanswered),
		retries.Load(), flakes, counts.Total(), len(counts), len(repeated), extra,
		pct(latencies, 50), pct(latencies, 99), pct(latencies, 100), time.Since(testStart).Round(time.Second))
	if n := byOutcome[outcomeInterrupted]; n > 0 {
		t.Logf("%d calls answered -31003 (in flight on the killed executor); %d of them had entered the tool body", n, len(interruptedRan))
	}

	if len(killLog) < 6 {
		t.Errorf("the kill script did not complete (%d steps): the chaos did not happen as planned", len(killLog))
	}
	if len(unanswered) > 0 {
		t.Errorf("%d calls never answered, e.g. %s", len(unanswered), sample(unanswered))
	}
	if len(wrong) > 0 {
		t.Errorf("%d calls answered with neither their result nor -31003, e.g. %s", len(wrong), sample(wrong))
	}
	if len(lostResults) > 0 {
		t.Errorf("%d calls answered with a result the tool never produced (no execution logged), e.g. %s", len(lostResults), sample(lostResults))
	}
	if len(repeated) > 0 {
		t.Errorf("EXACTLY-ONCE VIOLATED: %d call ids executed more than once (%d extra executions of %d; by the first kill after sending: %v), e.g. %s",
			len(repeated), extra, counts.Total(), byKill, sample(repeatedIDs))
	}
	if len(strangers) > 0 {
		t.Errorf("%d executions of call ids no client sent, e.g. %s", len(strangers), sample(strangers))
	}
	if n := byOutcome[outcomeInterrupted]; n*1000 > chaosCalls*chaosMaxInterruptedPerMille {
		t.Errorf("%d calls answered -31003, more than %d.%d%% of %d: more than the killed executor can have had in flight",
			n, chaosMaxInterruptedPerMille/10, chaosMaxInterruptedPerMille%10, chaosCalls)
	}
}

func outcomeName(records []chaosRecord, id string, callID func(int, int) string) string {
	var ci, i int
	if _, err := fmt.Sscanf(id, "c%02d-%03d", &ci, &i); err != nil || callID(ci, i) != id {
		return "unknown call"
	}
	rec := records[ci*chaosPerClient+i]
	sent := fmt.Sprintf(", sent at %.1fs", rec.sent.Seconds())
	switch rec.outcome {
	case outcomeResult:
		return "answered with its result" + sent
	case outcomeInterrupted:
		return "answered -31003" + sent
	case outcomeWrong:
		return "answered wrongly" + sent
	default:
		return "unanswered" + sent
	}
}

func sample(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], "; ") + fmt.Sprintf("; ... (%d more)", len(s)-5)
	}
	return strings.Join(s, "; ")
}

// pct is the p-th percentile (nearest rank) of sorted latencies.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1].Round(time.Millisecond)
}

// TestSlowCallDoesNotDelayOthers runs a 10 s tally in one session; while
// its body sleeps, other sessions call tally back to back. Their calls,
// including some that share the slow call's toolcalls and jobs partition,
// and one in the slow call's own session, must complete quickly.
func TestSlowCallDoesNotDelayOthers(t *testing.T) {
	const (
		slowSleep    = 10 * time.Second
		fastSessions = 8
		p99Bound     = time.Second
		partitions   = 12
	)
	logPath := filepath.Join(t.TempDir(), "executions.log")
	b := startBroker(t, "")
	cfg := roleConfig(b, "all")
	cfg.Processor, cfg.Executor, cfg.Gateway = true, true, true
	cfg.CountingToolLog = logPath
	cfg.Streams.Partitions = partitions
	r := startRole(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	open := func() *rawSession {
		s := &rawSession{hc: &http.Client{}, endpoint: r.ready.MCPURL}
		if err := s.initialize(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	}
	slow := open()
	// Sessions sharing the slow session's sessions-processor partition are
	// the ones a blocked partition loop would delay; have at least two.
	slowPart := streams.PartitionFor(slow.sid, partitions)
	var fast []*rawSession
	samePart := 0
	for tries := 0; len(fast) < fastSessions || samePart < 2; tries++ {
		if tries > 200 {
			t.Fatalf("no two of %d sessions share partition %d", tries, slowPart)
		}
		s := open()
		if streams.PartitionFor(s.sid, partitions) == slowPart {
			samePart++
			fast = append(fast, s)
		} else if len(fast) < fastSessions {
			fast = append(fast, s)
		}
	}

	type slowAnswer struct {
		a   attempt
		end time.Time
	}
	slowDone := make(chan slowAnswer, 1)
	slowStart := time.Now()
	go func() {
		a := slow.call(ctx, 1, counting.ToolTally, "slow", int(slowSleep/time.Millisecond))
		slowDone <- slowAnswer{a, time.Now()}
	}()
	// The window opens when the slow body is running (its line is logged).
	for {
		c, err := counting.ReadCounts(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if c["slow"] == 1 {
			break
		}
		if time.Since(slowStart) > 30*time.Second {
			t.Fatal("the slow call did not start within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	windowStart := time.Now()
	windowEnd := slowStart.Add(slowSleep - 500*time.Millisecond)

	type fastCall struct {
		latency   time.Duration
		partition int32
		session   int
		err       string
	}
	var mu sync.Mutex
	var calls []fastCall
	var wg sync.WaitGroup
	record := func(fc fastCall) { mu.Lock(); calls = append(calls, fc); mu.Unlock() }
	run := func(si int, s *rawSession, firstID int, maxCalls int) {
		for i := 0; i < maxCalls && time.Now().Before(windowEnd); i++ {
			rpcID := firstID + i
			id := fmt.Sprintf("fast-%d-%d", si, i)
			t0 := time.Now()
			a := s.call(ctx, rpcID, counting.ToolTally, id, 0)
			fc := fastCall{latency: time.Since(t0), session: si,
				partition: streams.PartitionFor(streams.SessionEventID(s.sid, []byte(fmt.Sprint(rpcID))), partitions)}
			if a.retry || a.outcome != outcomeResult {
				fc.err = a.detail
			}
			// Every call started in the window counts, however late it
			// ends: a call held behind the slow one must show its wait.
			record(fc)
		}
	}
	for si, s := range fast {
		wg.Go(func() { run(si, s, 1, 1<<20) })
	}
	// A second call in the slow call's own session: concurrent requests in
	// one session are allowed, and the slow one must not hold this one.
	wg.Go(func() { run(-1, slow, 2, 20) })
	wg.Wait()

	sa := <-slowDone
	if sa.a.retry || sa.a.outcome != outcomeResult {
		t.Fatalf("slow call: %+v", sa.a)
	}
	if d := sa.end.Sub(slowStart); d < slowSleep {
		t.Fatalf("slow call answered after %s, before its %s sleep ended", d, slowSleep)
	}
	if !windowEnd.After(windowStart.Add(2 * time.Second)) {
		t.Fatalf("the slow call started %s after it was sent: no window left to measure", windowStart.Sub(slowStart))
	}

	var lat []time.Duration
	var failed []string
	samePartCalls, ownSession := 0, 0
	slowCallPart := streams.PartitionFor(streams.SessionEventID(slow.sid, []byte("1")), partitions)
	for _, fc := range calls {
		if fc.err != "" {
			failed = append(failed, fc.err)
			continue
		}
		lat = append(lat, fc.latency)
		if fc.partition == slowCallPart {
			samePartCalls++
		}
		if fc.session == -1 {
			ownSession++
		}
	}
	slices.Sort(lat)
	t.Logf("while a %s call ran (answered after %s): %d other calls, %d in its toolcalls/jobs partition, %d in its own session; p50 %s p99 %s max %s",
		slowSleep, sa.end.Sub(slowStart).Round(time.Millisecond), len(lat), samePartCalls, ownSession, pct(lat, 50), pct(lat, 99), pct(lat, 100))
	if len(failed) > 0 {
		t.Errorf("%d calls failed during the slow call, e.g. %s", len(failed), sample(failed))
	}
	if p99 := pct(lat, 99); p99 > p99Bound {
		t.Errorf("p99 latency %s while the slow call ran, want < %s", p99, p99Bound)
	}
	if len(lat) < 50 {
		t.Errorf("only %d calls completed during the slow call", len(lat))
	}
	if samePartCalls < 3 {
		t.Errorf("only %d calls shared the slow call's partition: the test proves little", samePartCalls)
	}
	if ownSession < 3 {
		t.Errorf("only %d calls completed in the slow call's own session during it", ownSession)
	}
}
