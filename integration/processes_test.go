package integration

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// proc is one mcpstream role running as its own OS process.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	line chan string
	done chan struct{}
}

// startProc runs the binary with args in its own process group and stops it
// (SIGTERM, then SIGKILL) at the end of the test.
func startProc(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, line: make(chan string, 64), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCPSTREAM_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = &lockedWriter{p: p}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.line <- sc.Text():
			default:
			}
		}
	}()
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.signal(syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s output (last 8 KiB):\n%s", name, conformanceTail(p.out.String(), 8<<10))
			p.mu.Unlock()
		}
	})
	return p
}

type lockedWriter struct{ p *proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

func (p *proc) signal(s syscall.Signal) { _ = syscall.Kill(-p.cmd.Process.Pid, s) }

// await returns the first submatch of re on a stdout line.
func (p *proc) await(t *testing.T, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-p.line:
			if m := re.FindStringSubmatch(l); m != nil {
				return m[1]
			}
		case <-p.done:
			t.Fatalf("%s exited before printing %s", p.name, re)
		case <-deadline:
			t.Fatalf("%s did not print %s within %s", p.name, re, timeout)
		}
	}
}

var (
	brokersRE = regexp.MustCompile(`^Kafka brokers: (\S+)`)
	opsRE     = regexp.MustCompile(`^Metrics and health: (http://\S+)/metrics`)
	mcpRE     = regexp.MustCompile(`^MCP endpoint: (http://\S+)`)
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSeparateProcesses runs the roles as the README says, as OS processes:
// a broker, two processors, two gateways. A client alternates between the
// gateways on every request; one processor is killed with SIGKILL and the
// session goes on through the other.
func TestSeparateProcesses(t *testing.T) {
	root := conformanceModuleRoot(t)
	bin := conformanceBuildBinary(t, root)

	broker := startProc(t, bin, "broker", "broker", "--broker-port", "0", "--data-dir", t.TempDir())
	brokers := broker.await(t, brokersRE, 60*time.Second)
	brokerOps := broker.await(t, opsRE, 10*time.Second)

	procOps := map[string]string{}
	procs := map[string]*proc{}
	for _, id := range []string{"p1", "p2"} {
		p := startProc(t, bin, id, "processor", "--brokers", brokers, "--instance-id", id)
		procOps[id] = p.await(t, opsRE, 90*time.Second)
		procs[id] = p
	}
	var gwURLs []string
	for _, id := range []string{"g1", "g2"} {
		g := startProc(t, bin, id, "gateway", "--brokers", brokers, "--instance-id", id, "--listen", "127.0.0.1:0")
		gwURLs = append(gwURLs, g.await(t, mcpRE, 60*time.Second))
	}

	rr := newRoundRobin(gwURLs...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := connect(t, ctx, &http.Client{Transport: rr}, gwURLs[0], "2025-11-25")
	defer cs.Close()
	call := func(i int) time.Duration {
		start := time.Now()
		cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
		defer ccancel()
		res, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "test_simple_text"})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got := textOf(t, res); got != "This is a simple text response for testing." {
			t.Fatalf("call %d: %q", i, got)
		}
		return time.Since(start)
	}
	for i := 0; i < 10; i++ {
		call(i)
	}
	if a, b := rr.sent[0].Load(), rr.sent[1].Load(); a == 0 || b == 0 {
		t.Fatalf("requests per gateway %d/%d: round robin did not use both", a, b)
	}

	// Every role serves health and metrics.
	for name, base := range map[string]string{"broker": brokerOps, "p1": procOps["p1"], "p2": procOps["p2"],
		"g1": strings.TrimSuffix(gwURLs[0], "/mcp"), "g2": strings.TrimSuffix(gwURLs[1], "/mcp")} {
		if code, _ := httpGet(t, base+"/healthz"); code != 200 {
			t.Errorf("%s /healthz: %d", name, code)
		}
		if code, body := httpGet(t, base+"/readyz"); code != 200 {
			t.Errorf("%s /readyz: %d %s", name, code, body)
		}
	}
	if _, body := httpGet(t, strings.TrimSuffix(gwURLs[0], "/mcp")+"/metrics"); !strings.Contains(body, `mcpstream_requests_total{gateway="gw-g1",method="tools/call",outcome="ok"}`) ||
		!strings.Contains(body, "mcpstream_kafka_produce_duration_seconds") {
		t.Errorf("gateway metrics lack request counters:\n%s", conformanceTail(body, 2000))
	}
	if _, body := httpGet(t, procOps["p2"]+"/metrics"); !strings.Contains(body, `mcpstream_consumer_lag_records{group="mcpstream-sessions"`) {
		t.Errorf("processor metrics lack consumer lag:\n%s", conformanceTail(body, 2000))
	}

	// Kill a processor without warning: its partitions move to the other
	// after the group session timeout, and no call fails.
	procs["p1"].signal(syscall.SIGKILL)
	<-procs["p1"].done
	var worst time.Duration
	for i := 10; i < 40; i++ {
		if d := call(i); d > worst {
			worst = d
		}
	}
	t.Logf("after SIGKILL of a processor: 30 calls answered, slowest %s (partitions taken over)", worst)
}
