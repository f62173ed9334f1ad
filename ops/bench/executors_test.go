package bench

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestExecutorsSmoke runs a short executor-scaling measurement with one and
// two executors: every call must succeed through the platform, both
// executors must take jobs, and the report must print every row.
func TestExecutorsSmoke(t *testing.T) {
	rep, err := Executors(t.Context(), ExecutorsConfig{Executors: []int{1, 2}, Concurrency: 4,
		Duration: time.Second, Warmup: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out := rep.String()
	t.Log("\n" + out)
	if rep.Direct.Calls == 0 || rep.Direct.Errors != 0 {
		t.Errorf("direct reference: %d calls, %d errors", rep.Direct.Calls, rep.Direct.Errors)
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("got %d rows, want 2", len(rep.Rows))
	}
	for _, row := range rep.Rows {
		if row.Result.Calls == 0 || row.Result.Errors != 0 {
			t.Errorf("%d executors: %d calls, %d errors", row.Executors, row.Result.Calls, row.Result.Errors)
		}
		if len(row.Jobs) != row.Executors {
			t.Errorf("%d executors: jobs reported for %d", row.Executors, len(row.Jobs))
		}
		// The ideal bound holds for any correct measurement.
		if row.Result.ReqPerSec > row.Ideal*1.05 {
			t.Errorf("%d executors: %.1f calls/s beats the ideal %.1f: the tool did not sleep", row.Executors, row.Result.ReqPerSec, row.Ideal)
		}
	}
	if jobs := rep.Rows[1].Jobs; len(jobs) == 2 && jobs[1] == 0 {
		t.Errorf("the second executor ran no jobs (%v)", jobs)
	}
	for _, want := range []string{"direct in-process", "1 executor (default)", "2 executors (default)"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestExecutorsRejectsBadCounts(t *testing.T) {
	for _, counts := range [][]int{{0}, {2, 1}} {
		if _, err := Executors(t.Context(), ExecutorsConfig{Executors: counts}); err == nil {
			t.Errorf("Executors(%v) succeeded", counts)
		}
	}
}

// BenchmarkExecutors prints calls/s and latency with 1, 2 and 3 executors
// on a tool that sleeps 20 ms, next to the tool called directly and the
// ideal bound. One op is the whole measurement: run it with -benchtime 1x.
// MCPSTREAM_BENCH_EXECUTOR_MODES (comma-separated: auto, share, group;
// default: the platform's default) and MCPSTREAM_BENCH_DURATION (per row,
// default 5s) shape the run.
func BenchmarkExecutors(b *testing.B) {
	cfg := ExecutorsConfig{}
	if v := os.Getenv("MCPSTREAM_BENCH_EXECUTOR_MODES"); v != "" {
		cfg.Modes = strings.Split(v, ",")
	}
	if v := os.Getenv("MCPSTREAM_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("parsing MCPSTREAM_BENCH_DURATION: %v", err)
		}
		cfg.Duration = d
	}
	for i := 0; i < b.N; i++ {
		rep, err := Executors(b.Context(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Log("\n" + rep.String())
		b.ReportMetric(0, "ns/op") // meaningless: one op is a whole run
		b.ReportMetric(rep.Direct.ReqPerSec, "calls/s-direct")
		for _, row := range rep.Rows {
			mode := row.Mode
			if mode == "" {
				mode = "default"
			}
			b.ReportMetric(row.Result.ReqPerSec, fmt.Sprintf("calls/s-%s-%dexec", mode, row.Executors))
		}
	}
}
