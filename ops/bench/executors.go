package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpstream/mcpstream/ops/platform"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools"
	"github.com/mcpstream/mcpstream/tools/counting"
)

// Defaults of ExecutorsConfig.
const (
	DefaultExecutorConcurrency = 8
	DefaultToolSleep           = 20 * time.Millisecond
	DefaultExecutorsDuration   = 5 * time.Second
	DefaultExecutorsWarmup     = 2 * time.Second
)

// ExecutorsConfig configures Executors. Zero fields take defaults.
type ExecutorsConfig struct {
	// Executors are the executor counts measured, in order; nil: 1, 2, 3.
	// Each count reuses the platform of the previous one plus the
	// executors it lacks, so give them ascending.
	Executors []int
	// Concurrency bounds the jobs one executor runs at once. Zero: 8, small
	// enough that one executor saturates well below what the platform can
	// carry, so adding executors shows.
	Concurrency int
	// Sessions is the client concurrency. Zero: Concurrency × the largest
	// executor count, so the largest row can keep every executor busy.
	Sessions int
	// Sleep is how long each call's tool body sleeps. Zero: 20 ms.
	Sleep time.Duration
	// Tool is the counting tool called. Empty: tally (not idempotent: the
	// platform must fence it, which is the expensive path).
	Tool string
	// Modes are the executor modes (platform.Config.ExecutorMode: auto,
	// share, group) measured, each on a fresh platform. Nil: the default.
	Modes []string
	// Duration is the measured window per row; Warmup precedes it (and
	// covers the rebalance a newly started executor causes). Zero: 5 s, 2 s.
	Duration time.Duration
	Warmup   time.Duration
	Logger   *slog.Logger
}

func (c ExecutorsConfig) withDefaults() (ExecutorsConfig, error) {
	if c.Executors == nil {
		c.Executors = []int{1, 2, 3}
	}
	largest := 0
	for i, n := range c.Executors {
		if n < 1 || i > 0 && n < c.Executors[i-1] {
			return c, fmt.Errorf("bench: executor counts %v: want ascending counts of at least 1", c.Executors)
		}
		largest = max(largest, n)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultExecutorConcurrency
	}
	if c.Sessions == 0 {
		c.Sessions = c.Concurrency * largest
	}
	if c.Sleep == 0 {
		c.Sleep = DefaultToolSleep
	}
	if c.Tool == "" {
		c.Tool = counting.ToolTally
	}
	if c.Modes == nil {
		c.Modes = []string{""}
	}
	if c.Duration == 0 {
		c.Duration = DefaultExecutorsDuration
	}
	if c.Warmup == 0 {
		c.Warmup = DefaultExecutorsWarmup
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Concurrency < 1 || c.Sessions < 1 || c.Sleep < 0 || c.Duration < 0 {
		return c, fmt.Errorf("bench: bad executors config %+v", c)
	}
	return c, nil
}

// ExecutorsRow is one measured configuration.
type ExecutorsRow struct {
	Mode      string // as configured; "" is the platform's default
	Executors int
	Result    Result
	// Ideal is the bound no implementation can beat: calls in flight at
	// once (the smaller of Sessions and Executors × Concurrency) per Sleep.
	Ideal float64
	// Jobs are the tool jobs each executor finished during the row (warmup
	// included): how evenly the work was shared.
	Jobs []int
}

// ExecutorsReport is what Executors measured.
type ExecutorsReport struct {
	Config ExecutorsConfig
	// Direct is the reference: the same tool called in-process with the
	// same concurrency, no MCP, no Kafka.
	Direct      Result
	DirectIdeal float64
	Rows        []ExecutorsRow
}

// Executors measures tool-call throughput and latency through the whole
// platform (all roles in this process, embedded in-memory broker) as
// executors are added, against two references: the tool called directly,
// and the ideal bound. The tool is the counting provider's, sleeping
// cfg.Sleep, so an executor's capacity is Concurrency/Sleep calls per
// second and scaling shows as long as the platform itself keeps up.
func Executors(ctx context.Context, cfg ExecutorsConfig) (ExecutorsReport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return ExecutorsReport{}, err
	}
	rep := ExecutorsReport{Config: cfg}
	dir, err := os.MkdirTemp("", "mcpstream-bench-executors-")
	if err != nil {
		return rep, fmt.Errorf("bench: creating a directory for the execution log: %w", err)
	}
	defer os.RemoveAll(dir)
	logPath := filepath.Join(dir, "executions.log")
	args := map[string]any{"call_id": "bench", "sleep_ms": cfg.Sleep.Milliseconds()}

	rep.Direct, err = runDirect(ctx, cfg, logPath, args)
	if err != nil {
		return rep, err
	}
	rep.DirectIdeal = float64(cfg.Sessions) / cfg.Sleep.Seconds()
	for _, mode := range cfg.Modes {
		rows, err := runMode(ctx, cfg, mode, logPath, args)
		rep.Rows = append(rep.Rows, rows...)
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// runDirect calls the tool from cfg.Sessions goroutines back to back, the
// way Run's sessions do through MCP.
func runDirect(ctx context.Context, cfg ExecutorsConfig, logPath string, args map[string]any) (Result, error) {
	p, err := counting.New(logPath)
	if err != nil {
		return Result{}, err
	}
	defer p.Close()
	raw, err := json.Marshal(args)
	if err != nil {
		return Result{}, fmt.Errorf("bench: encoding tool arguments: %w", err)
	}
	start := time.Now()
	window := start.Add(cfg.Warmup)
	end := window.Add(cfg.Duration)
	workers := make([]worker, cfg.Sessions)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		wg.Go(func() {
			for {
				t0 := time.Now()
				if !t0.Before(end) || ctx.Err() != nil {
					return
				}
				res, err := p.CallTool(ctx, tools.Call{Name: cfg.Tool, Arguments: raw}, nil)
				d := time.Since(t0)
				if t0.Before(window) {
					continue
				}
				if err != nil || res.IsError {
					w.errors++
					continue
				}
				w.latencies = append(w.latencies, d)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("bench: direct calls interrupted: %w", err)
	}
	res := summarize(workers, time.Since(window))
	res.Protocol = "none (direct)"
	return res, nil
}

// benchRole is one platform.Run in this process.
type benchRole struct {
	id   string
	reg  *prometheus.Registry
	stop func()
}

func startBenchRole(ctx context.Context, cfg platform.Config) (*benchRole, platform.Ready, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &benchRole{id: cfg.InstanceID, reg: prometheus.NewRegistry()}
	cfg.Registry = r.reg
	ready := make(chan platform.Ready, 1)
	done := make(chan error, 1)
	cfg.OnReady = func(rd platform.Ready) { ready <- rd }
	go func() { done <- platform.Run(ctx, cfg) }()
	r.stop = func() { cancel(); <-done }
	select {
	case rd := <-ready:
		return r, rd, nil
	case err := <-done:
		cancel()
		if err == nil {
			err = errors.New("stopped before it was ready")
		}
		return nil, platform.Ready{}, fmt.Errorf("bench: starting %s: %w", cfg.InstanceID, err)
	case <-time.After(60 * time.Second):
		r.stop()
		return nil, platform.Ready{}, fmt.Errorf("bench: starting %s: not ready after 60s", cfg.InstanceID)
	}
}

// jobs is the number of tool jobs the role's executor finished.
func (r *benchRole) jobs() int {
	mfs, err := r.reg.Gather()
	if err != nil {
		return -1
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "mcpstream_executor_jobs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += m.GetCounter().GetValue()
		}
	}
	return int(n)
}

// runMode starts a fresh platform in one executor mode and measures every
// executor count on it, adding executors between rows.
func runMode(ctx context.Context, cfg ExecutorsConfig, mode, logPath string, args map[string]any) (rows []ExecutorsRow, err error) {
	// Executors of other modes on a shared broker would share (or fight
	// over) the jobs topic: every mode gets its own broker.
	broker, err := streams.NewBroker(streams.BrokerConfig{Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("bench: starting broker: %w", err)
	}
	var roles []*benchRole
	defer func() {
		// Executors first, then the core, then the broker: a client closed
		// after its broker logs errors (DESIGN.md, "Non-obvious things").
		// The broker's Run (periodic compaction) is not needed for a run
		// this short.
		for i := len(roles) - 1; i >= 0; i-- {
			roles[i].stop()
		}
		broker.Close()
	}()

	base := platform.Config{Streams: streams.Config{Brokers: broker.Addrs()}, CountingToolLog: logPath,
		ExecutorConcurrency: cfg.Concurrency, ExecutorMode: mode, Logger: cfg.Logger}
	core := base
	core.InstanceID, core.Processor, core.Executor, core.Gateway, core.Listen = "bench-core", true, true, true, "127.0.0.1:0"
	r, ready, err := startBenchRole(ctx, core)
	if err != nil {
		return nil, err
	}
	roles = append(roles, r)

	for _, n := range cfg.Executors {
		for len(roles) < n {
			ex := base
			ex.InstanceID, ex.Executor = fmt.Sprintf("bench-e%d", len(roles)+1), true
			r, _, err := startBenchRole(ctx, ex)
			if err != nil {
				return rows, err
			}
			roles = append(roles, r)
		}
		before := make([]int, len(roles))
		for i, r := range roles {
			before[i] = r.jobs()
		}
		res, err := Run(ctx, Config{URL: ready.MCPURL, Sessions: cfg.Sessions, Duration: cfg.Duration, Warmup: cfg.Warmup,
			Tool: cfg.Tool, Args: args, Logger: cfg.Logger})
		if err != nil {
			return rows, fmt.Errorf("bench: %d executors (mode %q): %w", n, mode, err)
		}
		row := ExecutorsRow{Mode: mode, Executors: n, Result: res,
			Ideal: float64(min(cfg.Sessions, n*cfg.Concurrency)) / cfg.Sleep.Seconds()}
		for i, r := range roles {
			row.Jobs = append(row.Jobs, r.jobs()-before[i])
		}
		rows = append(rows, row)
		cfg.Logger.Info("bench: executors row", "mode", mode, "executors", n, "result", res.String(), "jobs", row.Jobs)
	}
	return rows, nil
}

// String renders the report as a table: one row per reference and
// configuration, with throughput as a share of the ideal bound.
func (r ExecutorsReport) String() string {
	c := r.Config
	var b strings.Builder
	fmt.Fprintf(&b, "executor scaling: tool %s sleeping %s, %d client sessions, %d concurrent jobs per executor, %s measured per row\n",
		c.Tool, c.Sleep, c.Sessions, c.Concurrency, c.Duration)
	fmt.Fprintf(&b, "%-34s %8s %6s %9s %9s %6s %9s %9s %9s  %s\n",
		"target", "calls", "errors", "calls/s", "ideal/s", "share", "p50", "p99", "max", "jobs per executor")
	row := func(name string, res Result, ideal float64, jobs []int) {
		share := "n/a"
		if ideal > 0 {
			share = fmt.Sprintf("%.0f%%", 100*res.ReqPerSec/ideal)
		}
		js := ""
		if jobs != nil {
			js = strings.Trim(fmt.Sprint(jobs), "[]")
		}
		fmt.Fprintf(&b, "%-34s %8d %6d %9.1f %9.1f %6s %9s %9s %9s  %s\n",
			name, res.Calls, res.Errors, res.ReqPerSec, ideal, share, ms(res.P50), ms(res.P99), ms(res.Max), js)
	}
	row("direct in-process (no MCP, Kafka)", r.Direct, r.DirectIdeal, nil)
	for _, x := range r.Rows {
		mode := x.Mode
		if mode == "" {
			mode = "default"
		}
		plural := "s"
		if x.Executors == 1 {
			plural = ""
		}
		row(fmt.Sprintf("mcpstream, %d executor%s (%s)", x.Executors, plural, mode), x.Result, x.Ideal, x.Jobs)
	}
	return b.String()
}
