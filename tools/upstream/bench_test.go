package upstream

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpstream/mcpstream/tools"
)

const benchCallers = 8

// BenchmarkFederatedVsDirect compares a federated call (tools.Registry ->
// Provider -> pooled upstream session) with the same upstream called
// directly through the go-sdk client, in the same process, under the same
// load: 8 concurrent callers calling server-everything's echo, 8 upstream
// sessions (8 processes for stdio) on both sides. Reports calls/s and
// p50/p99 latency.
//
//	go test -run '^$' -bench FederatedVsDirect -benchtime 4000x ./tools/upstream/
func BenchmarkFederatedVsDirect(b *testing.B) {
	ev := serverEverything(b)
	httpURL := startHTTPEverything(b, newMarker(b))
	echoArgs := json.RawMessage(`{"message":"bench"}`)
	longArgs := json.RawMessage(`{"duration":0.3,"steps":1}`)

	direct := func(b *testing.B, newTransport func() mcp.Transport) {
		sessions := make([]*mcp.ClientSession, benchCallers)
		c := mcp.NewClient(&mcp.Implementation{Name: "bench-direct", Version: "1"},
			&mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
		for i := range sessions {
			cs, err := c.Connect(context.Background(), newTransport(), &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
			if err != nil {
				b.Fatal(err)
			}
			defer cs.Close()
			sessions[i] = cs
		}
		measure(b, func(w int) error {
			_, err := sessions[w].CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: echoArgs})
			return err
		})
	}
	federated := func(b *testing.B, cfg Config, tool string, args json.RawMessage, warmTool string, warmArgs json.RawMessage) {
		cfg.Pool.Size = benchCallers
		p, err := New(cfg, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		reg, err := tools.NewRegistry(p)
		if err != nil {
			b.Fatal(err)
		}
		// Open all 8 pooled sessions before timing: 8 overlapping calls.
		var wg sync.WaitGroup
		for range benchCallers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := reg.CallTool(context.Background(), tools.Call{Name: cfg.Name + "." + warmTool,
					Arguments: warmArgs}, nil); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		measure(b, func(int) error {
			_, err := reg.CallTool(context.Background(), tools.Call{Name: cfg.Name + "." + tool, Arguments: args}, nil)
			return err
		})
		if st := p.Stats(); st.Opened != benchCallers {
			b.Errorf("federated side opened %d sessions, want %d", st.Opened, benchCallers)
		}
	}
	httpClient := func() *http.Client {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 2*benchCallers + 2 // as the provider sets it
		return &http.Client{Transport: t}
	}()

	b.Run("stdio/direct", func(b *testing.B) {
		direct(b, func() mcp.Transport { return &mcp.CommandTransport{Command: exec.Command(ev.node, ev.entry)} })
	})
	b.Run("stdio/federated", func(b *testing.B) {
		federated(b, Config{Name: "everything", Stdio: &StdioConfig{Command: ev.node, Args: []string{ev.entry}}},
			"echo", echoArgs, "trigger-long-running-operation", longArgs)
	})
	b.Run("http/direct", func(b *testing.B) {
		direct(b, func() mcp.Transport {
			return &mcp.StreamableClientTransport{Endpoint: httpURL, HTTPClient: httpClient}
		})
	})
	b.Run("http/federated", func(b *testing.B) {
		federated(b, Config{Name: "everything", HTTP: &HTTPConfig{URL: httpURL}},
			"echo", echoArgs, "trigger-long-running-operation", longArgs)
	})

	// The same pair against the official go-sdk server in this process:
	// no node in the picture, so the difference is the federation layer.
	_, goURL := startGoSDKServer(b)
	addArgs := json.RawMessage(`{"a":1,"b":2}`)
	b.Run("gosdk-http/direct", func(b *testing.B) {
		sessions := make([]*mcp.ClientSession, benchCallers)
		c := mcp.NewClient(&mcp.Implementation{Name: "bench-direct", Version: "1"},
			&mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
		for i := range sessions {
			cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: goURL, HTTPClient: httpClient},
				&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
			if err != nil {
				b.Fatal(err)
			}
			defer cs.Close()
			sessions[i] = cs
		}
		measure(b, func(w int) error {
			_, err := sessions[w].CallTool(context.Background(), &mcp.CallToolParams{Name: "add", Arguments: addArgs})
			return err
		})
	})
	b.Run("gosdk-http/federated", func(b *testing.B) {
		federated(b, Config{Name: "gosdk", HTTP: &HTTPConfig{URL: goURL}},
			"add", addArgs, "sleep", json.RawMessage(`{"ms":300}`))
	})
}

// benchWarmup calls precede the timed ones on both sides, so neither
// measures node's JIT warming up.
const benchWarmup = 800

// measure runs benchWarmup untimed calls, then b.N calls spread over
// benchCallers goroutines, and reports throughput and latency percentiles.
func measure(b *testing.B, do func(worker int) error) {
	var warm sync.WaitGroup
	var left atomic.Int64
	left.Store(benchWarmup)
	for w := range benchCallers {
		warm.Add(1)
		go func() {
			defer warm.Done()
			for left.Add(-1) >= 0 {
				if err := do(w); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	warm.Wait()
	var next atomic.Int64
	lat := make([][]time.Duration, benchCallers)
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range benchCallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := do(w); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds())
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "calls/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	// CPU of this Go process per call: the client side (plus the server,
	// for the in-process go-sdk pair), free of the noise of node processes
	// competing for the same cores.
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-µs/call")
	b.ReportMetric(0, "ns/op") // per-op time across 8 callers is misleading
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
