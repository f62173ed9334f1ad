// Command mcpstream runs the mcpstream platform or one of its roles.
//
//	mcpstream run        everything in one process on the embedded broker
//	mcpstream broker     the embedded Kafka-protocol broker (kfake)
//	mcpstream processor  goka processors (and, by default, an executor)
//	mcpstream executor   a tool executor
//	mcpstream gateway    an MCP Streamable HTTP gateway
//	mcpstream bench      load test: mcpstream vs the go-sdk reference server
//
// Every flag can also be set as MCPSTREAM_<FLAG> (dashes as underscores).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mcpstream/mcpstream/ops/bench"
	"github.com/mcpstream/mcpstream/ops/platform"
	"github.com/mcpstream/mcpstream/streams"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run", "broker", "processor", "executor", "gateway", "redis-projector":
		err = runRole(ctx, os.Args[1], os.Args[2:])
	case "bench":
		err = runBench(ctx, os.Args[2:])
	case "projector":
		err = runProjector(ctx, os.Args[2:])
	case "replay":
		err = runReplay(ctx, os.Args[2:])
	case "topics":
		err = runTopics(ctx, os.Args[2:])
	case "lag":
		err = runLag(ctx, os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "mcpstream: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcpstream %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: mcpstream <command> [flags]

commands:
  run         the whole platform in one process (embedded broker, processors, executor, gateway)
  broker      the embedded Kafka-protocol broker
  processor   goka processors (sessions, toolcalls) and an executor unless --with-executor=false
  executor    a tool executor
  gateway     an MCP endpoint
  redis-projector  projects live sessions into Redis
  projector   keep the PostgreSQL read models up to date (--pg-dsn; several DSNs shard)
  replay      rebuild read models from the log into fresh tables and swap them in (resumable)
  topics      describe topics (partitions, cleanup policy); --create makes missing ones
  lag         consumer lag per group and partition (--pg-dsn adds the projector's)
  bench       load test against mcpstream and the go-sdk reference server

Run "mcpstream <command> -h" for its flags. Every flag may be set as MCPSTREAM_<FLAG>.
`)
}

func runRole(ctx context.Context, role string, args []string) error {
	fs := flag.NewFlagSet(role, flag.ExitOnError)
	cfg := platform.Config{ConformanceTools: true}
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap servers (default for run: the embedded broker)")
	fs.StringVar(&cfg.Streams.Topics.Prefix, "topic-prefix", streams.DefaultPrefix, "prefix of every topic and group name")
	partitions := fs.Int("partitions", 12, "partitions of every topic (must match an existing deployment)")
	replication := fs.Int("replication", 1, "replication factor of created topics (3 on a real cluster)")
	fs.StringVar(&cfg.InstanceID, "instance-id", "", "name of this process in client, executor and gateway ids (default hostname-pid)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&cfg.ConformanceTools, "conformance-tools", true, "serve the built-in conformance-suite fixtures (tools, resources, prompts)")
	fs.IntVar(&cfg.PageSize, "page-size", 50, "entries per page of every list")
	cursorKey := fs.String("cursor-key", "", "secret signing pagination cursors and input-required request state; the same on every processor and executor")
	if role == "run" || role == "broker" {
		fs.IntVar(&cfg.BrokerPort, "broker-port", 9092, "port of the embedded broker (0: any)")
		fs.StringVar(&cfg.BrokerListenHost, "broker-listen-host", "127.0.0.1", "interface the embedded broker listens on (0.0.0.0 in a container)")
		fs.StringVar(&cfg.BrokerAdvertiseHost, "broker-advertise-host", "", "host name the broker tells clients to use (default: the listen address)")
		fs.StringVar(&cfg.DataDir, "data-dir", "data/kafka", "directory the embedded broker persists to (empty: memory only)")
		fs.BoolVar(&cfg.SyncWrites, "sync-writes", false, "fsync every produce before acknowledging it")
	}
	if role == "run" || role == "gateway" {
		fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "gateway HTTP address; the MCP endpoint is /mcp")
		fs.String("allowed-origins", "", "comma-separated extra Origins to accept (localhost is always accepted)")
		fs.String("allowed-hosts", "", "comma-separated extra Host names to accept (DNS-rebinding protection)")
		fs.BoolVar(&cfg.GatewayPublicHost, "public-host", false, "accept any Host header (behind a proxy on a public name)")
		fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 4<<20, "largest request body accepted (413 above)")
		fs.DurationVar(&cfg.RequestTimeout, "request-timeout", 5*time.Minute, "longest wait for a reply")
		fs.DurationVar(&cfg.SSEPollAfter, "sse-poll-after", 0, "2025-11-25 tool calls answer on SSE and the stream is closed after this long if the call still runs; clients resume with GET + Last-Event-ID at any gateway (SEP-1699); 0: off")
	}
	withExecutor := role == "run" || role == "executor"
	if role == "processor" {
		fs.BoolVar(&withExecutor, "with-executor", true, "also run a tool executor in this process")
	}
	if role != "run" && role != "gateway" {
		fs.StringVar(&cfg.OpsListen, "ops-listen", "127.0.0.1:0", "address of /metrics, /healthz, /readyz")
	}
	if role == "run" || role == "processor" || role == "gateway" || role == "redis-projector" {
		def := ""
		if role == "run" {
			def = "127.0.0.1:6379" // make run uses a local Redis when there is one, and says so when not
		}
		fs.StringVar(&cfg.RedisAddr, "redis-addr", def, "Redis host:port for the session projection and the gateway cache (empty: no Redis)")
	}
	if role == "run" || role == "processor" {
		def := ""
		if role == "run" {
			def = "postgres://postgres@127.0.0.1:5432/mcpstream?sslmode=disable" // make run: use the local PostgreSQL when there is one
		}
		fs.Func("pg-dsn", "PostgreSQL for the read models (comma-separated: shards); empty: none (default for run: the local mcpstream database)", func(v string) error {
			cfg.ProjectionsDSNs = splitList(v)
			return nil
		})
		cfg.ProjectionsDSNs = splitList(def)
	}
	if role == "run" || role == "processor" || role == "redis-projector" {
		fs.DurationVar(&cfg.RedisIdleTTL, "redis-idle-ttl", time.Hour, "idle expiry of sessions projected into Redis")
		fs.DurationVar(&cfg.SessionIdleTimeout, "session-idle-timeout", time.Hour, "end 2025-11-25 sessions unused for this long (later requests get 404; 0: never)")
	}
	if role == "run" || role == "processor" || role == "executor" {
		fs.StringVar(&cfg.UpstreamsFile, "upstreams", "", "JSON file of upstream MCP servers whose tools are served as <name>.<tool> (see ops/upstreams/example.json)")
		fs.StringVar(&cfg.CountingToolLog, "counting-tool-log", "", "serve the test tools tally and tally_idempotent, appending each execution to this file (chaos test, benchmark); empty: off")
	}
	fs.IntVar(&cfg.ExecutorConcurrency, "executor-concurrency", 64, "tool jobs an executor runs at once")
	fs.DurationVar(&cfg.ToolTimeout, "tool-timeout", 5*time.Minute, "longest a tool may run")
	toolTimeouts := fs.String("tool-timeouts", "", "per-tool timeouts overriding --tool-timeout, e.g. slow.report=20m,everything.echo=5s")
	fs.StringVar(&cfg.ExecutorMode, "executor-mode", "auto", "how executors share jobs: share (Kafka share groups, KIP-932: idle executors take any waiting job), group (classic consumer group: whole partitions per executor), auto (share where the broker supports it)")
	fs.DurationVar(&cfg.ExecutorLease, "executor-lease", 10*time.Second, "an executor silent this long has its in-flight calls reported orphaned: retried if the tool is idempotent, answered -31003 if not")
	if err := parse(fs, args); err != nil {
		return err
	}
	tt, err := parseToolTimeouts(*toolTimeouts)
	if err != nil {
		return err
	}
	cfg.ToolTimeouts = tt
	if f := fs.Lookup("allowed-origins"); f != nil {
		cfg.GatewayAllowedOrigins = splitList(f.Value.String())
		cfg.GatewayAllowedHosts = splitList(fs.Lookup("allowed-hosts").Value.String())
	}
	cfg.Streams.Brokers = splitList(*brokers)
	if *cursorKey != "" {
		cfg.CursorKey = []byte(*cursorKey)
	}
	cfg.Streams.Partitions = int32(*partitions)
	cfg.Streams.Replication = int16(*replication)
	switch role {
	case "run":
		cfg.Broker = len(cfg.Streams.Brokers) == 0
		cfg.Processor, cfg.Executor, cfg.Gateway = true, withExecutor, true
		cfg.RedisProjector = cfg.RedisAddr != ""
	case "broker":
		cfg.Broker = true
	case "processor":
		cfg.Processor, cfg.Executor = true, withExecutor
		cfg.RedisProjector = cfg.RedisAddr != ""
	case "redis-projector":
		cfg.RedisProjector = true
	case "executor":
		cfg.Executor = true
	case "gateway":
		cfg.Gateway = true
	}
	if role != "run" && role != "broker" && len(cfg.Streams.Brokers) == 0 {
		cfg.Streams.Brokers = []string{"127.0.0.1:9092"}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.OnReady = func(r platform.Ready) {
		fmt.Printf("Kafka brokers: %s\n", strings.Join(r.Brokers, ","))
		if r.MCPURL != "" {
			fmt.Printf("MCP endpoint: %s\n", r.MCPURL)
		}
		fmt.Printf("Metrics and health: %s/metrics %s/readyz\n", r.OpsURL, r.OpsURL)
	}
	return platform.Run(ctx, cfg)
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	var cfg bench.CompareConfig
	fs.IntVar(&cfg.Sessions, "sessions", 8, "concurrent MCP sessions")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time per target")
	fs.StringVar(&cfg.Tool, "tool", "test_simple_text", "tool to call")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the mcpstream phase to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	out, err := bench.Compare(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Print(out)
	return nil
}

// parse applies MCPSTREAM_* environment variables as defaults, then flags.
func parse(fs *flag.FlagSet, args []string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "MCPSTREAM_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
		}
	})
	if err != nil {
		return err
	}
	return fs.Parse(args)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseToolTimeouts reads name=duration pairs separated by commas.
func parseToolTimeouts(s string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, kv := range splitList(s) {
		name, dur, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("--tool-timeouts: %q is not name=duration", kv)
		}
		d, err := time.ParseDuration(strings.TrimSpace(dur))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--tool-timeouts: %q: want a positive duration like 30s", kv)
		}
		out[strings.TrimSpace(name)] = d
	}
	return out, nil
}
