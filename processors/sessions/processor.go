package sessions

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/mcpstream/mcpstream/processors"
	"github.com/mcpstream/mcpstream/processors/mrtr"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools"
)

// Config configures a sessions processor instance.
type Config struct {
	Streams streams.Config
	// ClientID must be unique per instance (goka and sarama key state on it).
	ClientID string
	// Server is what initialize and server/discover report. Zero value:
	// processors.DefaultServerInfo.
	Server processors.ServerInfo
	// Storage builds the local table store. Nil: in memory, recovered from
	// the table topic at start (never goka's shared default LevelDB folder,
	// which leaks state between instances and clusters).
	Storage storage.Builder
	// Catalog serves resources, prompts and completion from built-in
	// providers (*tools.CatalogRegistry). Nil: none; those methods answer
	// -32601 and are not advertised.
	Catalog Catalog
	// PageSize is the most entries one tools/list, resources/list,
	// resources/templates/list or prompts/list page holds. Zero:
	// DefaultPageSize; negative is rejected.
	PageSize int
	// CursorKey signs list cursors (HMAC-SHA256); every processor instance
	// of a deployment needs the same key, since any of them may receive the
	// next page's request. Empty: a key built into the code, so cursors are
	// tamper-evident but forgeable by someone who reads the source. The
	// requestState of input_required results is signed with a key derived
	// from it (executors need the same key).
	CursorKey []byte
	// IdleTimeout ends sessions unused for longer: later requests get 404,
	// as after DELETE, and the table entry is deleted (expiry.go). Zero:
	// sessions never expire.
	IdleTimeout time.Duration
	// Notifications advertises listChanged and resources.subscribe: set it
	// when gateways and the tools that change lists publish through
	// processors/notify.
	Notifications bool
	// Options are extra goka options (tests pass goka.WithTester).
	Options []goka.ProcessorOption
	Logger  *slog.Logger
}

// Processor runs the sessions group.
type Processor struct {
	cfg    Config
	graph  *goka.GroupGraph
	tools  *tools.Registry
	codecs processors.Codecs
	log    *slog.Logger
	proc   atomic.Pointer[goka.Processor]
	cursor *Cursors
	states *mrtr.Signer
}

// New builds the group graph; it is validated before anything runs.
func New(reg *schemas.Registry, tr *tools.Registry, cfg Config) (*Processor, error) {
	cfg.Streams = cfg.Streams.WithDefaults()
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("sessions processor: ClientID is required")
	}
	if cfg.Server.Name == "" {
		cfg.Server = processors.DefaultServerInfo
	}
	if cfg.PageSize < 0 {
		return nil, fmt.Errorf("sessions processor: PageSize %d is negative", cfg.PageSize)
	}
	if cfg.Storage == nil {
		cfg.Storage = storage.MemoryBuilder()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Processor{cfg: cfg, tools: tr, codecs: processors.NewCodecs(reg), log: cfg.Logger.With("group", cfg.Streams.Topics.SessionsGroup()),
		cursor: NewCursors(cfg.CursorKey), states: mrtr.NewSigner(cfg.CursorKey)}
	t := cfg.Streams.Topics
	p.graph = goka.DefineGroup(goka.Group(t.SessionsGroup()),
		goka.Input(goka.Stream(t.Requests()), p.codecs.Request, p.process),
		goka.Persist(p.codecs.Session),
		goka.Output(goka.Stream(t.ToolCalls()), p.codecs.Job),
		goka.Output(goka.Stream(t.Replies()), p.codecs.Reply),
		goka.Output(goka.Stream(t.ToolControls()), p.codecs.Control),
		goka.Visitor(expireVisitor, p.expire),
	)
	if err := p.graph.Validate(); err != nil {
		return nil, fmt.Errorf("sessions group graph: %w", err)
	}
	return p, nil
}

// Graph exposes the group graph (for goka's tester).
func (p *Processor) Graph() *goka.GroupGraph { return p.graph }

func (p *Processor) env(ctx context.Context) Env {
	list, err := p.tools.ListTools(ctx)
	if err != nil {
		p.log.Error("listing tools", "err", err)
	}
	return Env{Tools: list, Server: p.cfg.Server, Known: func(name string) bool {
		_, _, ok := p.tools.Lookup(name)
		return ok
	}, TaskSupport: func(name string) string {
		_, t, ok := p.tools.Lookup(name)
		if !ok {
			return tools.TaskForbidden
		}
		return t.TaskSupport()
	}, Escalates: func(name string) bool {
		_, t, ok := p.tools.Lookup(name)
		return ok && t.Escalates()
	}, Catalog: p.cfg.Catalog, PageSize: p.cfg.PageSize, Cursors: p.cursor, States: p.states, Ctx: ctx,
		IdleTimeout: p.cfg.IdleTimeout, Notifications: p.cfg.Notifications}
}

func (p *Processor) process(ctx goka.Context, msg any) {
	ev, ok := msg.(*schemas.RequestEvent)
	if !ok {
		p.log.Error("dropping request of wrong type", "type", fmt.Sprintf("%T", msg))
		return
	}
	var st *schemas.SessionState
	if ev.SessionID != "" {
		if v := ctx.Value(); v != nil {
			st = v.(*schemas.SessionState)
		}
	}
	out := Handle(p.env(ctx.Context()), st, ev, ctx.Offset(), time.Now())
	switch {
	case out.Delete:
		ctx.Delete()
	case out.State != nil:
		ctx.SetValue(out.State)
	}
	t := p.cfg.Streams.Topics
	if out.Forward != nil {
		ctx.Emit(goka.Stream(t.ToolCalls()), out.Forward.EventID, out.Forward)
	}
	if out.Reply != nil && out.Reply.Gateway != "" {
		ctx.Emit(goka.Stream(t.Replies()), out.Reply.Gateway, out.Reply)
	}
	if out.Control != nil {
		ctx.Emit(goka.Stream(t.ToolControls()), out.Control.EventID, out.Control)
	}
}

// Run processes until ctx is done. Its error is never to be dropped: goka
// reports storage and rebalance failures only here.
func (p *Processor) Run(ctx context.Context) error {
	opts := append(streams.GokaOptions(p.cfg.Streams, p.cfg.ClientID, p.cfg.Logger),
		goka.WithStorageBuilder(p.cfg.Storage), goka.WithLogger(processors.GokaLogger(p.log)))
	opts = append(opts, p.cfg.Options...)
	proc, err := goka.NewProcessor(p.cfg.Streams.Brokers, p.graph, opts...)
	if err != nil {
		return fmt.Errorf("creating sessions processor: %w", err)
	}
	p.proc.Store(proc)
	if p.cfg.IdleTimeout > 0 {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go p.sweep(sctx, proc)
	}
	if err := proc.Run(ctx); err != nil {
		return fmt.Errorf("running sessions processor: %w", err)
	}
	return nil
}

// Ready reports whether the processor has joined its group and recovered
// its partitions.
func (p *Processor) Ready() bool {
	proc := p.proc.Load()
	return proc != nil && proc.StateReader().State() == goka.ProcStateRunning
}
