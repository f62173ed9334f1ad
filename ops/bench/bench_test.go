package bench

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func startReference(tb testing.TB) string {
	tb.Helper()
	url, stop, err := StartReference(tb.Context(), "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return url
}

func TestReferenceServesSimpleText(t *testing.T) {
	url := startReference(t)
	client := mcp.NewClient(&mcp.Implementation{Name: "bench-test", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: url}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: DefaultTool})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError || len(res.Content) != 1 || firstText(res) != SimpleText {
		t.Errorf("%s returned %+v, want one text content %q", DefaultTool, res, SimpleText)
	}
}

func TestRunAgainstReference(t *testing.T) {
	url := startReference(t)
	const sessions = 4
	res, err := Run(t.Context(), Config{URL: url, Sessions: sessions, Duration: time.Second, Warmup: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Calls == 0 || res.Errors != 0 {
		t.Errorf("got %d calls, %d errors; want some calls and no errors", res.Calls, res.Errors)
	}
	if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max {
		t.Errorf("percentiles out of order: p50 %s, p99 %s, max %s", res.P50, res.P99, res.Max)
	}
	if res.Elapsed < time.Second || res.Elapsed > time.Second+drainGrace {
		t.Errorf("Elapsed = %s, want within [1s, 1s+%s]", res.Elapsed, drainGrace)
	}
	if res.Protocol != DefaultProtocolVersion {
		t.Errorf("negotiated protocol %q, want %q", res.Protocol, DefaultProtocolVersion)
	}
	// Keep-alive must work or the numbers measure TCP setup: one POST and
	// one SSE connection per session, with slack for a POST that starts
	// before the previous response body is fully released to the pool.
	if res.Conns > 4*sessions {
		t.Errorf("dialed %d connections for %d sessions and %d calls; keep-alive is not working", res.Conns, sessions, res.Calls)
	}
}

func TestRunCountsToolErrors(t *testing.T) {
	url := startReference(t)
	res, err := Run(t.Context(), Config{URL: url, Sessions: 2, Duration: 300 * time.Millisecond, Warmup: -1, Tool: "no_such_tool"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls != 0 || res.Errors == 0 {
		t.Errorf("calling a missing tool: got %d calls, %d errors; want 0 calls and some errors", res.Calls, res.Errors)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	url := startReference(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, Config{URL: url, Sessions: 2, Duration: time.Minute, Warmup: -1})
	if err == nil {
		t.Fatal("Run returned nil error after its context was cancelled")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %s to notice cancellation", d)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{URL: ""},
		{URL: "127.0.0.1:8080/mcp"},
		{URL: "ftp://127.0.0.1/mcp"},
		{URL: "http://127.0.0.1:1/mcp", Sessions: -1},
	} {
		if _, err := Run(t.Context(), cfg); err == nil {
			t.Errorf("Run(%+v) succeeded, want a config error", cfg)
		}
	}
}

func TestPercentile(t *testing.T) {
	sorted := make([]time.Duration, 100)
	for i := range sorted {
		sorted[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		perMille int
		want     time.Duration
	}{{500, 50}, {900, 90}, {990, 99}, {1000, 100}, {0, 1}} {
		if got := percentile(sorted, tc.perMille); got != tc.want {
			t.Errorf("percentile(1..100, %d) = %d, want %d", tc.perMille, got, tc.want)
		}
	}
	if got := percentile([]time.Duration{7}, 990); got != 7 {
		t.Errorf("percentile of one sample = %d, want 7", got)
	}
}

func TestFormatComparison(t *testing.T) {
	ref := Result{Calls: 2000, ReqPerSec: 2000, P50: 3 * time.Millisecond, P99: 10 * time.Millisecond}
	sub := Result{Calls: 1000, ReqPerSec: 1000, P50: 6 * time.Millisecond, P99: 25 * time.Millisecond}
	out := FormatComparison(ref, sub, "go-sdk", "mcpstream")
	t.Log("\n" + out)
	for _, want := range []string{"go-sdk", "mcpstream", "throughput 0.50x", "p99 2.50x"} {
		if !strings.Contains(out, want) {
			t.Errorf("FormatComparison output lacks %q:\n%s", want, out)
		}
	}
	if got := FormatComparison(Result{}, sub, "a", "b"); !strings.Contains(got, "throughput n/a") {
		t.Errorf("zero reference should give n/a ratios:\n%s", got)
	}
}

// BenchmarkReference measures the in-process go-sdk server. A load run is
// its own timed loop, so b.N is ignored; run it with -benchtime=1x.
// MCPSTREAM_BENCH_SESSIONS (default 8) and MCPSTREAM_BENCH_DURATION (default
// 5s) override the shape of the run.
func BenchmarkReference(b *testing.B) {
	sessions, duration := 8, 5*time.Second
	if v := os.Getenv("MCPSTREAM_BENCH_SESSIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("parsing MCPSTREAM_BENCH_SESSIONS: %v", err)
		}
		sessions = n
	}
	if v := os.Getenv("MCPSTREAM_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("parsing MCPSTREAM_BENCH_DURATION: %v", err)
		}
		duration = d
	}
	url := startReference(b)
	b.ResetTimer()
	res, err := Run(b.Context(), Config{URL: url, Sessions: sessions, Duration: duration})
	if err != nil {
		b.Fatal(err)
	}
	b.Log(res)
	b.ReportMetric(0, "ns/op") // meaningless here: one op is a whole run
	b.ReportMetric(res.ReqPerSec, "req/s")
	b.ReportMetric(float64(res.P50)/float64(time.Millisecond), "p50-ms")
	b.ReportMetric(float64(res.P90)/float64(time.Millisecond), "p90-ms")
	b.ReportMetric(float64(res.P99)/float64(time.Millisecond), "p99-ms")
	b.ReportMetric(float64(res.Errors), "errors")
}
