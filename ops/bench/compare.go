package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/mcpstream/mcpstream/ops/platform"
)

// CompareConfig configures Compare.
type CompareConfig struct {
	Sessions int           // zero: DefaultSessions
	Duration time.Duration // per target; zero: DefaultDuration
	Tool     string        // zero: DefaultTool
	// CPUProfile, if set, receives a CPU profile of the mcpstream run.
	CPUProfile string
	Logger     *slog.Logger
}

// Compare runs the same load against the go-sdk reference server and
// against an all-in-one mcpstream (embedded broker in memory, every role in
// this process), and formats both side by side. The reference runs first so
// that mcpstream's background goroutines cannot slow it.
func Compare(ctx context.Context, cfg CompareConfig) (string, error) {
	load := Config{Sessions: cfg.Sessions, Duration: cfg.Duration, Tool: cfg.Tool, Logger: cfg.Logger}

	refURL, stopRef, err := StartReference(ctx, "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("starting reference server: %w", err)
	}
	load.URL = refURL
	ref, err := Run(ctx, load)
	stopRef()
	if err != nil {
		return "", fmt.Errorf("loading reference server: %w", err)
	}

	url, stop, err := StartPlatform(ctx)
	if err != nil {
		return "", err
	}
	defer stop()
	load.URL = url
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return "", fmt.Errorf("creating cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return "", fmt.Errorf("starting cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	subj, err := Run(ctx, load)
	if err != nil {
		return "", fmt.Errorf("loading mcpstream: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "load: %d sessions, %s per target, tool %s, protocol %s\n", load.Sessions, load.Duration, load.Tool, subj.Protocol)
	b.WriteString(FormatComparison(ref, subj, "go-sdk reference (no Kafka)", "mcpstream all-in-one (kfake)"))
	return b.String(), nil
}

// StartPlatform starts mcpstream with every role in this process on an
// in-memory embedded broker and returns its MCP URL once ready.
func StartPlatform(ctx context.Context) (url string, stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- platform.Run(ctx, platform.Config{Broker: true, Processor: true, Executor: true, Gateway: true,
			Listen: "127.0.0.1:0", ConformanceTools: true,
			OnReady: func(r platform.Ready) { ready <- r.MCPURL }})
	}()
	stop = func() { cancel(); <-done }
	select {
	case url = <-ready:
		return url, stop, nil
	case err = <-done:
		cancel()
		if err == nil {
			err = errors.New("platform stopped before it was ready")
		}
		return "", func() {}, fmt.Errorf("starting mcpstream: %w", err)
	case <-time.After(60 * time.Second):
		stop()
		return "", func() {}, errors.New("starting mcpstream: not ready after 60s")
	}
}
