package toolcalls

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/mcpstream/mcpstream/processors"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

// Config configures a toolcalls processor instance.
type Config struct {
	Streams  streams.Config
	ClientID string // unique per instance
	// Storage: nil means in memory, recovered from the table topic.
	Storage storage.Builder
	Options []goka.ProcessorOption
	Logger  *slog.Logger
}

// Processor runs the toolcalls group.
type Processor struct {
	cfg   Config
	graph *goka.GroupGraph
	log   *slog.Logger
	proc  atomic.Pointer[goka.Processor]
}

// New builds and validates the group graph.
func New(reg *schemas.Registry, cfg Config) (*Processor, error) {
	cfg.Streams = cfg.Streams.WithDefaults()
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("toolcalls processor: ClientID is required")
	}
	if cfg.Storage == nil {
		cfg.Storage = storage.MemoryBuilder()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := processors.NewCodecs(reg)
	t := cfg.Streams.Topics
	p := &Processor{cfg: cfg, log: cfg.Logger.With("group", t.ToolCallsGroup())}
	p.graph = goka.DefineGroup(goka.Group(t.ToolCallsGroup()),
		goka.Input(goka.Stream(t.ToolCalls()), c.Job, p.onCall),
		goka.Input(goka.Stream(t.ToolResults()), c.Result, p.onResult),
		goka.Persist(c.ToolCall),
		goka.Output(goka.Stream(t.Jobs()), c.Job),
		goka.Output(goka.Stream(t.Replies()), c.Reply),
	)
	if err := p.graph.Validate(); err != nil {
		return nil, fmt.Errorf("toolcalls group graph: %w", err)
	}
	return p, nil
}

// Graph exposes the group graph (for goka's tester).
func (p *Processor) Graph() *goka.GroupGraph { return p.graph }

func state(ctx goka.Context) *schemas.ToolCallState {
	if v := ctx.Value(); v != nil {
		return v.(*schemas.ToolCallState)
	}
	return nil
}

func (p *Processor) apply(ctx goka.Context, out Outcome) {
	if out.State != nil {
		ctx.SetValue(out.State)
	}
	t := p.cfg.Streams.Topics
	if out.Job != nil {
		ctx.Emit(goka.Stream(t.Jobs()), out.Job.EventID, out.Job)
	}
	for _, r := range out.Replies {
		ctx.Emit(goka.Stream(t.Replies()), r.Gateway, r)
	}
}

func (p *Processor) onCall(ctx goka.Context, msg any) {
	job, ok := msg.(*schemas.ToolJob)
	if !ok {
		p.log.Error("dropping call of wrong type", "type", fmt.Sprintf("%T", msg))
		return
	}
	p.apply(ctx, OnCall(state(ctx), job, ctx.Offset(), time.Now()))
}

func (p *Processor) onResult(ctx goka.Context, msg any) {
	res, ok := msg.(*schemas.ToolResult)
	if !ok {
		p.log.Error("dropping result of wrong type", "type", fmt.Sprintf("%T", msg))
		return
	}
	p.apply(ctx, OnResult(state(ctx), res, time.Now()))
}

// Run processes until ctx is done.
func (p *Processor) Run(ctx context.Context) error {
	opts := append(streams.GokaOptions(p.cfg.Streams, p.cfg.ClientID, p.cfg.Logger),
		goka.WithStorageBuilder(p.cfg.Storage), goka.WithLogger(processors.GokaLogger(p.log)))
	opts = append(opts, p.cfg.Options...)
	proc, err := goka.NewProcessor(p.cfg.Streams.Brokers, p.graph, opts...)
	if err != nil {
		return fmt.Errorf("creating toolcalls processor: %w", err)
	}
	p.proc.Store(proc)
	if err := proc.Run(ctx); err != nil {
		return fmt.Errorf("running toolcalls processor: %w", err)
	}
	return nil
}

// Ready reports whether the processor runs with its partitions recovered.
func (p *Processor) Ready() bool {
	proc := p.proc.Load()
	return proc != nil && proc.StateReader().State() == goka.ProcStateRunning
}
