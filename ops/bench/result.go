package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Result is what one Run measured. Latency percentiles cover successful calls
// only, so a server that fails fast cannot look fast.
type Result struct {
	// Calls is the number of successful calls started in the measured window.
	Calls int
	// Errors counts calls in the window that failed (transport error,
	// JSON-RPC error, or a result with isError set), plus sessions the server
	// dropped at any point.
	Errors int
	// Elapsed is the measured wall time: Duration plus the time the last
	// in-flight calls took to finish.
	Elapsed time.Duration
	// ReqPerSec is Calls / Elapsed.
	ReqPerSec float64
	P50       time.Duration
	P90       time.Duration
	P99       time.Duration
	Max       time.Duration
	// Protocol is the MCP protocol version the server negotiated, so a
	// comparison can show both sides spoke the same one.
	Protocol string
	// Conns is the number of TCP connections dialed, warmup included. Close
	// to twice the session count means keep-alive worked; a count near Calls
	// means the server closes connections and every call paid for a dial.
	Conns int
}

// String renders r as one line, e.g.
//
//	23012 calls, 0 errors in 10.00s: 2301.2 req/s, p50 3.01ms, p90 6.20ms, p99 12.05ms, max 40.10ms (18 conns, 2025-11-25)
func (r Result) String() string {
	return fmt.Sprintf("%d calls, %d errors in %.2fs: %.1f req/s, p50 %s, p90 %s, p99 %s, max %s (%d conns, %s)",
		r.Calls, r.Errors, r.Elapsed.Seconds(), r.ReqPerSec,
		ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), r.Conns, r.Protocol)
}

// FormatComparison prints ref and subject as two rows of one table, followed
// by how the subject compares: throughput as subject/ref (above 1 is faster)
// and p99 as subject/ref (above 1 is slower).
func FormatComparison(ref, subject Result, refName, subjectName string) string {
	w := max(len("server"), len(refName), len(subjectName))
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s %10s %7s %10s %9s %9s %9s %9s %6s  %s\n",
		w, "server", "calls", "errors", "req/s", "p50", "p90", "p99", "max", "conns", "protocol")
	for _, row := range []struct {
		name string
		r    Result
	}{{refName, ref}, {subjectName, subject}} {
		r := row.r
		fmt.Fprintf(&b, "%-*s %10d %7d %10.1f %9s %9s %9s %9s %6d  %s\n",
			w, row.name, r.Calls, r.Errors, r.ReqPerSec,
			ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), r.Conns, r.Protocol)
	}
	fmt.Fprintf(&b, "%s/%s: throughput %s, p99 %s\n", subjectName, refName,
		ratio(subject.ReqPerSec, ref.ReqPerSec),
		ratio(float64(subject.P99), float64(ref.P99)))
	return b.String()
}

func ratio(num, den float64) string {
	if den == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", num/den)
}

// ms prints milliseconds with fixed precision so table columns line up,
// which time.Duration's own String does not.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// summarize merges the workers' latencies. Sorting once at the end costs
// O(n log n) for a few hundred thousand samples, which is far cheaper than
// keeping any shared histogram consistent on the hot path.
func summarize(workers []worker, elapsed time.Duration) Result {
	n := 0
	errs := 0
	for i := range workers {
		n += len(workers[i].latencies)
		errs += workers[i].errors
	}
	all := make([]time.Duration, 0, n)
	for i := range workers {
		all = append(all, workers[i].latencies...)
	}
	slices.Sort(all)
	r := Result{Calls: n, Errors: errs, Elapsed: elapsed}
	if elapsed > 0 {
		r.ReqPerSec = float64(n) / elapsed.Seconds()
	}
	if n > 0 {
		r.P50 = percentile(all, 500)
		r.P90 = percentile(all, 900)
		r.P99 = percentile(all, 990)
		r.Max = all[n-1]
	}
	return r
}

// percentile returns the perMille/1000 quantile by the nearest-rank method,
// so the result is always an observed latency. Integer arithmetic because
// ceil(0.99*n) in floating point is off by one for some n.
func percentile(sorted []time.Duration, perMille int) time.Duration {
	rank := (perMille*len(sorted) + 999) / 1000
	return sorted[max(rank, 1)-1]
}
