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
	reg   *schemas.Registry
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
	p := &Processor{cfg: cfg, reg: reg, log: cfg.Logger.With("group", t.ToolCallsGroup())}
	p.graph = goka.DefineGroup(goka.Group(t.ToolCallsGroup()),
		goka.Input(goka.Stream(t.ToolCalls()), c.Job, p.onCall),
		goka.Input(goka.Stream(t.ToolControls()), c.ControlOrResult, p.onControl),
		goka.Persist(c.ToolCall),
		goka.Output(goka.Stream(t.Jobs()), c.Job),
		goka.Output(goka.Stream(t.Replies()), c.Reply),
		goka.Output(goka.Stream(t.ExecutorCommands()), c.Command),
		goka.Output(goka.Stream(t.ToolResults()), c.Result),
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
	if out.Redispatch && out.State != nil {
		job, err := p.reg.DecodeJob(out.State.Job)
		if err != nil {
			// The job was encoded by this processor; failing to read it back
			// is a bug, and the call would otherwise wait forever.
			ctx.Fail(fmt.Errorf("decoding stored job of %s: %w", out.State.EventID, err))
		}
		ctx.Emit(goka.Stream(t.Jobs()), job.EventID, job)
	}
	for _, r := range out.Replies {
		ctx.Emit(goka.Stream(t.Replies()), r.Gateway, r)
	}
	for _, c := range out.Commands {
		ctx.Emit(goka.Stream(t.ExecutorCommands()), c.Executor, c)
	}
	if out.Completed != nil {
		ctx.Emit(goka.Stream(t.ToolResults()), out.Completed.EventID, out.Completed)
	}
}

func (p *Processor) onCall(ctx goka.Context, msg any) {
	job, ok := msg.(*schemas.ToolJob)
	if !ok {
		p.log.Error("dropping call of wrong type", "type", fmt.Sprintf("%T", msg))
		return
	}
	framed, err := p.reg.EncodeJob(job)
	if err != nil {
		ctx.Fail(fmt.Errorf("encoding job %s: %w", job.EventID, err))
	}
	p.apply(ctx, OnCall(state(ctx), job, framed, ctx.Offset(), time.Now()))
}

func (p *Processor) onControl(ctx goka.Context, msg any) {
	switch m := msg.(type) {
	case *schemas.ToolControl:
		p.apply(ctx, OnControl(state(ctx), m, time.Now()))
	case *schemas.ToolResult:
		p.apply(ctx, OnResult(state(ctx), m, time.Now()))
	default:
		p.log.Error("dropping control of wrong type", "type", fmt.Sprintf("%T", msg))
	}
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
