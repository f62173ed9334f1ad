package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"golang.org/x/sync/errgroup"

	"github.com/mcpstream/mcpstream/gateway"
	"github.com/mcpstream/mcpstream/ops/health"
	"github.com/mcpstream/mcpstream/ops/metrics"
	"github.com/mcpstream/mcpstream/processors/executor"
	"github.com/mcpstream/mcpstream/processors/notify"
	"github.com/mcpstream/mcpstream/processors/sessions"
	"github.com/mcpstream/mcpstream/processors/toolcalls"
	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/projections/cache"
	redisproj "github.com/mcpstream/mcpstream/projections/redis"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools"
	"github.com/mcpstream/mcpstream/tools/conformance"
	"github.com/mcpstream/mcpstream/tools/counting"
	"github.com/mcpstream/mcpstream/tools/upstream"
)

// Config selects roles and configures them.
type Config struct {
	Streams streams.Config

	// Broker runs the embedded kfake broker; Streams.Brokers is then set to
	// its address.
	Broker              bool
	BrokerPort          int    // zero: 9092 for `run`, set by cmd; 0 here means any free port
	BrokerListenHost    string // empty: 127.0.0.1
	BrokerAdvertiseHost string // empty: the listen address
	DataDir             string // broker persistence; empty: memory only
	SyncWrites          bool
	Processor           bool
	Executor            bool
	Gateway             bool

	// Listen is the gateway's HTTP address (MCP endpoint at /mcp, plus
	// /metrics, /healthz, /readyz).
	Listen string
	// OpsListen serves /metrics, /healthz, /readyz for processes without a
	// gateway. Empty: 127.0.0.1:0.
	OpsListen string
	// InstanceID names this process in client ids, the executor id and
	// the gateway id. Empty: hostname-pid.
	InstanceID string

	GatewayAllowedOrigins []string
	GatewayAllowedHosts   []string
	GatewayPublicHost     bool
	MaxBodyBytes          int64
	RequestTimeout        time.Duration
	// SSEPollAfter: see gateway.Config.SSEPollAfter (zero: off).
	SSEPollAfter time.Duration

	ExecutorConcurrency int
	ToolTimeout         time.Duration
	// ToolTimeouts overrides ToolTimeout per exposed tool name.
	ToolTimeouts map[string]time.Duration
	// ExecutorMode is auto (share groups where the broker has them), share
	// or group; see processors/executor.
	ExecutorMode string
	// ExecutorLease is how long an executor may go silent before its calls
	// are reported orphaned. Zero: 10 s.
	ExecutorLease time.Duration

	// Providers are the tool providers. Nil: the built-ins enabled below.
	// Those that also serve resources, prompts or completion (implement
	// tools.ResourceProvider, PromptProvider or Completer) join the catalog.
	Providers []tools.Provider
	// RedisAddr enables Redis: the session projection (where
	// RedisProjector is set) and the gateway's result cache. Empty: none.
	RedisAddr string
	// RedisProjector runs the Redis projector in this process.
	RedisProjector bool
	// RedisIdleTTL is the idle expiry of projected sessions. Zero: 1 h.
	RedisIdleTTL time.Duration
	// SessionIdleTimeout ends 2025-11-25 sessions unused for longer (404
	// afterwards, state deleted). Zero: never.
	SessionIdleTimeout time.Duration

	// UpstreamsFile lists upstream MCP servers (tools/upstream) whose
	// tools join the registry as "<name>.<tool>". Empty: none.
	UpstreamsFile string

	// ProjectionsDSNs enables the PostgreSQL read models, projected by a
	// projector in each processor process; several DSNs shard the rows.
	// Empty: none. Unreachable: the platform runs without them, saying so.
	ProjectionsDSNs []string

	// PageSize bounds every list page. Zero: 50.
	PageSize int
	// CursorKey signs pagination cursors and (through a derived key) the
	// requestState of input_required results; every processor and executor
	// of a deployment needs the same one. Empty: a built-in key (cursors can then be
	// forged by someone who read the source, not guessed).
	CursorKey []byte
	// ConformanceTools enables the built-in provider with the official
	// conformance suite's fixtures.
	ConformanceTools bool
	// CountingToolLog enables the built-in "counting" provider (tally,
	// tally_idempotent), which appends every execution to this file; the
	// chaos test and the executor benchmark use it. Empty: off.
	CountingToolLog string

	Logger *slog.Logger
	// Registry receives metrics; nil: a new registry with Go/process
	// collectors.
	Registry *prometheus.Registry
	// OnReady is called once, when every role of this process is ready.
	OnReady func(r Ready)
}

// Ready describes a process whose roles are all ready.
type Ready struct {
	MCPURL  string   // empty without the gateway role
	OpsURL  string   // base URL of /metrics, /healthz, /readyz
	Brokers []string // the Kafka bootstrap servers in use
}

// Run runs the configured roles until ctx is done or one fails.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !cfg.Broker && !cfg.Processor && !cfg.Executor && !cfg.Gateway && !cfg.RedisProjector {
		return errors.New("platform: no role selected")
	}
	if cfg.InstanceID == "" {
		h, _ := os.Hostname()
		cfg.InstanceID = fmt.Sprintf("%s-%d-%s", h, os.Getpid(), streams.NewID()[:6])
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	schemaReg, err := schemas.Load()
	if err != nil {
		return err
	}
	checks := &health.Checks{}
	g, ctx := errgroup.WithContext(ctx)

	if cfg.Broker {
		b, err := streams.NewBroker(streams.BrokerConfig{Port: cfg.BrokerPort, ListenHost: cfg.BrokerListenHost, AdvertiseHost: cfg.BrokerAdvertiseHost, DataDir: cfg.DataDir, SyncWrites: cfg.SyncWrites, Logger: log})
		if err != nil {
			return err
		}
		// Closed last, after every client of this process has stopped.
		defer b.Close()
		cfg.Streams.Brokers = b.Addrs()
		log.Info("embedded broker listening", "addrs", strings.Join(b.Addrs(), ","), "data_dir", cfg.DataDir)
		g.Go(func() error { return b.Run(ctx) })
		checks.Add("broker", func() bool { return true })
	}
	cfg.Streams = cfg.Streams.WithDefaults()
	if err := cfg.Streams.Validate(); err != nil {
		return err
	}

	// Topics must exist with the right partition counts before goka looks
	// at them; every role checks, so any start order works.
	if err := ensureTopics(ctx, cfg.Streams, log); err != nil {
		return err
	}

	var redisStore *redisproj.Store
	if cfg.RedisAddr != "" {
		redisproj.RouteClientLogs(log)
		prefix := cfg.Streams.Topics.Prefix
		if prefix == "" {
			prefix = streams.DefaultPrefix
		}
		redisStore, err = redisproj.NewStore(redisproj.Config{Addr: cfg.RedisAddr, KeyPrefix: prefix})
		if err != nil {
			return err
		}
		defer redisStore.Close() // after g.Wait
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := redisStore.Ping(pctx); err != nil {
			log.Warn("redis not reachable: running without it until it is (the projection catches up, the gateway goes through the log)", "addr", cfg.RedisAddr, "err", err)
		} else {
			log.Info("redis reachable", "addr", cfg.RedisAddr)
		}
		cancel()
	} else if cfg.Processor || cfg.Gateway {
		log.Info("no --redis-addr: Redis projection and gateway cache are off")
	}
	if cfg.RedisProjector {
		if redisStore == nil {
			return errors.New("platform: the Redis projector needs --redis-addr")
		}
		rp, err := redisproj.NewProjector(schemaReg, redisStore, redisproj.ProjectorConfig{Streams: cfg.Streams,
			ClientID: "redis-projector-" + cfg.InstanceID, IdleTTL: cfg.RedisIdleTTL, Logger: log,
			Metrics: metrics.NewRedisProjector(reg)})
		if err != nil {
			return err
		}
		g.Go(func() error { return supervise(ctx, log, "redis projector", rp.Run) })
		checks.Add("redis-projector", rp.Ready)
	}
	var gwCache *cache.Cache
	if cfg.Gateway && redisStore != nil {
		gwCache, err = cache.New(redisStore, cache.Config{Logger: log, Metrics: metrics.NewCache(reg, "gw-"+cfg.InstanceID)})
		if err != nil {
			return err
		}
		defer gwCache.Close()
	}

	var toolReg *tools.Registry
	var catalog *tools.CatalogRegistry
	if cfg.Processor || cfg.Executor {
		providers := cfg.Providers
		if providers == nil && cfg.ConformanceTools {
			// The trigger tools publish list changes to every gateway's
			// notification streams (processors/notify).
			pub, err := notify.NewPublisher(schemaReg, cfg.Streams, "notify-"+cfg.InstanceID, log)
			if err != nil {
				return err
			}
			defer pub.Close() // after g.Wait: no tool publishes any more
			providers = append(providers, conformance.New(conformance.WithToolsChangedHook(pub.ToolsChanged),
				conformance.WithPromptsChangedHook(pub.PromptsChanged)))
		}
		if cfg.CountingToolLog != "" {
			cp, err := counting.New(cfg.CountingToolLog)
			if err != nil {
				return err
			}
			defer cp.Close() // after g.Wait: no executor calls it any more
			// Clip: appending must not write into the caller's Providers array.
			providers = append(slices.Clip(providers), cp)
		}
		var regRef atomic.Pointer[tools.Registry]
		if cfg.UpstreamsFile != "" {
			ucfgs, err := upstream.Load(cfg.UpstreamsFile)
			if err != nil {
				return err
			}
			ups, err := upstream.NewAll(ucfgs, upstream.Options{Logger: log, OnToolsChanged: func() {
				r := regRef.Load()
				if r == nil {
					return
				}
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				if err := r.Refresh(rctx); err != nil {
					log.Warn("refreshing tools after an upstream's list changed", "err", err)
				}
			}})
			if err != nil {
				return err
			}
			// After g.Wait: the executor no longer calls them; Close reaps
			// every upstream process.
			defer func() {
				for _, u := range ups {
					_ = u.Close()
				}
			}()
			for _, u := range ups {
				providers = append(providers, u)
			}
		}
		// Bounds the first listing of upstream servers.
		lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		toolReg, err = tools.NewRegistryContext(lctx, providers...)
		cancel()
		if err != nil {
			return fmt.Errorf("building tool registry: %w", err)
		}
		regRef.Store(toolReg)
		var cps []tools.CatalogProvider
		for _, p := range providers {
			switch p.(type) {
			case tools.ResourceProvider, tools.PromptProvider, tools.Completer:
				cps = append(cps, p)
			}
		}
		catalog, err = tools.NewCatalogRegistry(ctx, cps...)
		if err != nil {
			return fmt.Errorf("building catalog registry: %w", err)
		}
	}

	if cfg.Processor {
		sp, err := sessions.New(schemaReg, toolReg, sessions.Config{Streams: cfg.Streams, ClientID: "sessions-" + cfg.InstanceID, Logger: log,
			Catalog: catalog, PageSize: cfg.PageSize, CursorKey: cfg.CursorKey,
			IdleTimeout: cfg.SessionIdleTimeout, Notifications: true})
		if err != nil {
			return err
		}
		tp, err := toolcalls.New(schemaReg, toolcalls.Config{Streams: cfg.Streams, ClientID: "toolcalls-" + cfg.InstanceID, Logger: log})
		if err != nil {
			return err
		}
		g.Go(func() error { return supervise(ctx, log, "sessions processor", sp.Run) })
		g.Go(func() error { return supervise(ctx, log, "toolcalls processor", tp.Run) })
		checks.Add("sessions-processor", sp.Ready)
		checks.Add("toolcalls-processor", tp.Ready)
	}
	if len(cfg.ProjectionsDSNs) > 0 && cfg.Processor {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if len(cfg.ProjectionsDSNs) == 1 {
			_ = projections.CreateDatabase(octx, cfg.ProjectionsDSNs[0])
		}
		st, err := projections.Open(octx, projections.StoreConfig{DSNs: cfg.ProjectionsDSNs, AsyncCommit: true, Logger: log})
		cancel()
		if err != nil {
			log.Warn("PostgreSQL read models unavailable; running without them", "err", err)
		} else {
			pj, err := projections.New(projections.Deps{Store: st, Schemas: schemaReg, Logger: log, Metrics: metrics.NewProjector(reg)},
				projections.Config{Streams: cfg.Streams, ClientID: "projector-" + cfg.InstanceID})
			if err != nil {
				st.Close()
				return err
			}
			log.Info("projecting into PostgreSQL", "shards", len(cfg.ProjectionsDSNs))
			g.Go(func() error { defer st.Close(); return supervise(ctx, log, "projector", pj.Run) })
		}
	}
	if cfg.Executor {
		em := metrics.NewExecutor(reg, cfg.InstanceID)
		ex, err := executor.New(schemaReg, toolReg, executor.Config{Streams: cfg.Streams, ID: cfg.InstanceID,
			Concurrency: cfg.ExecutorConcurrency, ToolTimeout: cfg.ToolTimeout, ToolTimeouts: cfg.ToolTimeouts,
			Mode: executor.Mode(cfg.ExecutorMode), Lease: cfg.ExecutorLease, Logger: log, Observe: em.Observe,
			StateKey: cfg.CursorKey})
		if err != nil {
			return err
		}
		g.Go(func() error { return ex.Run(ctx) })
	}
	if cfg.Processor || cfg.Broker {
		lagClient, err := streams.NewClient(cfg.Streams, "lag-"+cfg.InstanceID, nil)
		if err != nil {
			return err
		}
		t := cfg.Streams.Topics
		prefix := t.Prefix
		if prefix == "" {
			prefix = streams.DefaultPrefix
		}
		reg.MustRegister(metrics.NewLagCollector(kadm.NewClient(lagClient), log, t.SessionsGroup(), t.ToolCallsGroup(), t.ExecutorsGroup(), prefix+"-redis-projector", projections.GroupName(t)))
		g.Go(func() error { <-ctx.Done(); lagClient.Close(); return nil })
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	checks.Register(mux)
	addr := cfg.OpsListen
	var mcpPath string
	if cfg.Gateway {
		gw, err := gateway.New(schemaReg, gateway.Config{Streams: cfg.Streams, ID: "gw-" + cfg.InstanceID,
			MaxBodyBytes: cfg.MaxBodyBytes, RequestTimeout: cfg.RequestTimeout, SSEPollAfter: cfg.SSEPollAfter,
			AllowedOrigins: cfg.GatewayAllowedOrigins, AllowedHosts: cfg.GatewayAllowedHosts, PublicHost: cfg.GatewayPublicHost,
			Logger: log, Metrics: metrics.NewGateway(reg, "gw-"+cfg.InstanceID), Results: resultCache(gwCache)})
		if err != nil {
			return err
		}
		g.Go(func() error { return supervise(ctx, log, "gateway", gw.Run) })
		checks.Add("gateway", gw.Ready)
		mux.Handle("/mcp", gw.Handler())
		addr, mcpPath = cfg.Listen, "/mcp"
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	// ReadTimeout covers headers and body (a client trickling its body
	// holds a connection no longer); there is no WriteTimeout because SSE
	// responses last as long as the tool runs.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			// Requests still waiting for replies after the grace period are
			// cut; their clients retry with the same id elsewhere.
			log.Warn("closing HTTP connections still busy after 5s", "err", err)
			srv.Close()
		}
		return nil
	})
	base := "http://" + ln.Addr().String()
	g.Go(func() error {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if ok, _ := checks.Ready(); ok {
					mcpURL := ""
					if mcpPath != "" {
						mcpURL = base + mcpPath
					}
					log.Info("ready", "mcp_url", mcpURL, "ops_url", base)
					if cfg.OnReady != nil {
						cfg.OnReady(Ready{MCPURL: mcpURL, OpsURL: base, Brokers: cfg.Streams.Brokers})
					}
					return nil
				}
			}
		}
	})
	return g.Wait()
}

func ensureTopics(ctx context.Context, sc streams.Config, log *slog.Logger) error {
	cl, err := streams.NewClient(sc, "topic-admin", log)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := streams.Ping(ctx, cl); err != nil {
		return err
	}
	adm := kadm.NewClient(cl)
	if err := streams.EnsureTopicsConfig(ctx, adm, sc); err != nil {
		return fmt.Errorf("ensuring topics: %w", err)
	}
	return nil
}

// supervise runs a component until ctx is done, restarting it with backoff
// when it fails: a goka processor stops on any Kafka error (a broker
// restart, a network partition), and the process should come back by
// itself, not exit and take the other roles of an all-in-one with it.
func supervise(ctx context.Context, log *slog.Logger, name string, run func(context.Context) error) error {
	backoff := 500 * time.Millisecond
	for {
		start := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			backoff = 500 * time.Millisecond
		}
		log.Error("component stopped; restarting", "component", name, "err", err, "after", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// resultCache keeps a nil *cache.Cache from becoming a non-nil interface.
func resultCache(c *cache.Cache) gateway.ResultCache {
	if c == nil {
		return nil
	}
	return c
}
