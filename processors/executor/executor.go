package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools"
)

// Mode selects how executors share the jobs topic.
type Mode string

const (
	// ModeAuto uses share groups when the broker offers them, a consumer
	// group otherwise.
	ModeAuto Mode = "auto"
	// ModeShare uses a Kafka share group (KIP-932): any idle executor takes
	// any waiting job, so work is stolen from busy executors record by record.
	ModeShare Mode = "share"
	// ModeGroup uses a classic consumer group: each executor owns whole
	// partitions, and balance comes from having more partitions than
	// executors. A busy executor's backlog waits for it.
	ModeGroup Mode = "group"
)

// Config configures an executor.
type Config struct {
	Streams streams.Config
	// ID names this executor in claims, results and metrics; unique among
	// live executors, and stable across restarts of one (a restart is then
	// recognised at once instead of after the lease). Required.
	ID string
	// Concurrency bounds jobs running at once. Zero means 64.
	Concurrency int
	// ToolTimeout bounds one tool run. Zero means 5 minutes.
	ToolTimeout time.Duration
	// ToolTimeouts overrides ToolTimeout per exposed tool name.
	ToolTimeouts map[string]time.Duration
	// Mode is ModeAuto when empty.
	Mode Mode
	// Lease is how long an executor may go without a beat before the others
	// report the calls it holds as orphaned. Zero means 10 s. Beats go out
	// ten times per lease.
	Lease  time.Duration
	Logger *slog.Logger
	// Observe, if set, is called after each job with the tool name, how it
	// ended ("ok", "tool_error", "error", "timeout", "cancelled") and its
	// duration.
	Observe func(tool, outcome string, d time.Duration)
	// StateKey signs the requestState of 2026-07-28 input_required
	// results (see processors/mrtr): the deployment's cursor key, the same
	// on every processor and executor. Empty: the built-in key.
	StateKey []byte
}

// Executor runs jobs. Before a job's tool body runs, the toolcalls
// processor must grant this executor the call (see claims.go); the table's
// claim, plus the beats every executor publishes, is what keeps a call from
// running twice.
type Executor struct {
	cfg   Config
	reg   *schemas.Registry
	tools *tools.Registry
	log   *slog.Logger
	inc   string // this process's incarnation
	mode  Mode

	cl   *kgo.Client // jobs (group or share) and every produce
	cmds *kgo.Client // this executor's partition of executor-commands
	tbl  *kgo.Client // the executors table

	mu         sync.Mutex
	held       map[string]*call
	version    uint64 // bumped whenever held gains a call
	durable    uint64 // highest version a durable beat covered
	durableCh  chan struct{}
	lastBeatOK time.Time
	peers      map[string]*peer
	beatKick   chan struct{}

	sem     chan struct{}
	running sync.WaitGroup

	creq clientRequests // requests tools sent to clients (clientreq.go)

	stopMonitor context.CancelFunc
	monitorDone chan struct{}
}

// New validates cfg and builds the Kafka clients (they connect lazily).
func New(reg *schemas.Registry, tr *tools.Registry, cfg Config) (*Executor, error) {
	cfg.Streams = cfg.Streams.WithDefaults()
	if cfg.ID == "" {
		return nil, errors.New("executor: ID is required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.ToolTimeout == 0 {
		cfg.ToolTimeout = 5 * time.Minute
	}
	if cfg.Lease == 0 {
		cfg.Lease = 10 * time.Second
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeAuto
	}
	switch cfg.Mode {
	case ModeAuto, ModeShare, ModeGroup:
	default:
		return nil, fmt.Errorf("executor: unknown mode %q (want auto, share or group)", cfg.Mode)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Executor{cfg: cfg, reg: reg, tools: tr, inc: streams.NewID()[:12], mode: ModeAuto,
		held: map[string]*call{}, durableCh: make(chan struct{}), peers: map[string]*peer{},
		beatKick: make(chan struct{}, 1), sem: make(chan struct{}, cfg.Concurrency)}
	e.log = cfg.Logger.With("executor", cfg.ID, "incarnation", e.inc)
	return e, nil
}

// Incarnation identifies this process among the runs of one executor id.
func (e *Executor) Incarnation() string { return e.inc }

// Mode reports the mode in use once Run has started (ModeAuto before).
func (e *Executor) Mode() Mode {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mode
}

// Run consumes jobs until ctx is done, then waits for running jobs to
// report (bounded by their timeouts).
func (e *Executor) Run(ctx context.Context) error {
	if err := e.start(ctx); err != nil {
		return err
	}
	defer e.tbl.Close()
	defer e.cmds.Close()
	defer e.cl.Close()

	bg, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var bgDone sync.WaitGroup
	bgDone.Add(2)
	go func() { defer bgDone.Done(); e.readCommands(bg) }()
	go func() { defer bgDone.Done(); e.beatLoop(bg) }()

	err := e.consume(ctx)

	// Jobs already granted run to the end: their callers wait for them, and
	// cutting them off would turn them into orphans.
	e.running.Wait()
	e.releaseUnstarted(context.WithoutCancel(ctx))
	stopBg()
	bgDone.Wait()
	e.finalBeat()
	// A goroutine polling a closed client returns at once, forever: stop
	// the monitor before the deferred closes.
	e.stopMonitor()
	<-e.monitorDone
	return err
}

func (e *Executor) runJob(ctx context.Context, c *call) {
	job := c.job
	start := time.Now()
	n := &notifier{e: e, job: job, c: c}
	timeout := e.cfg.ToolTimeout
	if d, ok := e.cfg.ToolTimeouts[job.Tool]; ok && d > 0 {
		timeout = d
	}
	tctx, cancel := context.WithTimeout(c.ctx, timeout)
	if job.ClientCapabilities != nil {
		tctx = tools.WithClientCapabilities(tctx, job.ClientCapabilities)
	} else {
		tctx = tools.WithClientCapabilities(tctx, json.RawMessage(`{}`))
	}
	res, err := e.tools.CallTool(tctx, tools.Call{Name: job.Tool, Arguments: job.Arguments,
		ProgressToken: job.ProgressToken, SessionID: job.SessionID, EventID: job.EventID,
		InputResponses: job.InputResponses, RequestState: job.RequestState, Task: job.Task}, n)
	timedOut := tctx.Err() == context.DeadlineExceeded
	cancel()
	body, outcome := responseBody(res, err, timedOut, timeout)
	if ir, ok := n.inputRequired(err); ok {
		body, outcome = ir, "input_required"
	}
	if c.cancelled() {
		body, outcome = jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeRequestCancelled, "request cancelled by the client")), "cancelled"
	}
	if e.cfg.Observe != nil {
		e.cfg.Observe(job.Tool, outcome, time.Since(start))
	}
	if c.abandoned() {
		// Another executor holds the call (an idempotent job started before
		// its claim was answered): its result is the one that counts.
		return
	}
	// Notifications must be in the log before the result, or the gateway
	// could answer the request and close the stream before they arrive.
	n.wait()
	val, encErr := e.reg.EncodeResult(&schemas.ToolResult{EventID: job.EventID, Executor: e.cfg.ID, Response: body,
		StartedAt: start, FinishedAt: time.Now()})
	if encErr != nil {
		e.log.Error("encoding result", "event", job.EventID, "err", encErr)
		return
	}
	// Results go where claims go: in one partition, in order, so the
	// processor sees this result before any later claim of the same call.
	rec := &kgo.Record{Topic: e.cfg.Streams.Topics.ToolControls(), Key: []byte(job.EventID), Value: val}
	// The call stays in this executor's beats until its result is durable:
	// giving up earlier would leave the caller waiting on a holder that
	// forgot it. Retrying stops only at shutdown, after which the call is
	// reported orphaned by the others once the lease runs out.
	for attempt := 0; ; attempt++ {
		err := e.cl.ProduceSync(ctx, rec).FirstErr()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			e.log.Error("producing result failed at shutdown", "event", job.EventID, "err", err)
			return
		}
		if attempt%10 == 0 {
			e.log.Warn("producing result", "event", job.EventID, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if e.healthy() && !n.isTask() {
		// A task's caller was answered with the task handle long ago.
		e.replyFirst(ctx, job, body)
	}
	e.forget(job.EventID)
}

// replyFirst answers the caller that triggered the job straight away,
// saving the trip through the toolcalls processor on the common path. It
// runs only after the result is durable, so what the caller sees is what
// the table stores. The processor still answers every waiter, this one
// included: if this reply is lost (a crash right here) that one arrives,
// and a gateway drops the second answer to a request it already answered.
func (e *Executor) replyFirst(ctx context.Context, job *schemas.ToolJob, body []byte) {
	if job.ReplyGateway == "" {
		return
	}
	val, err := e.reg.EncodeReply(&schemas.ReplyEvent{Gateway: job.ReplyGateway, ReplyToken: job.ReplyToken,
		EventID: job.EventID, Kind: schemas.ReplyResponse, HTTPStatus: 200, SessionID: job.SessionID,
		Message: body, ProducedAt: time.Now()})
	if err != nil {
		e.log.Error("encoding reply", "event", job.EventID, "err", err)
		return
	}
	e.cl.Produce(ctx, &kgo.Record{Topic: e.cfg.Streams.Topics.Replies(), Key: []byte(job.ReplyGateway), Value: val}, nil)
}

func responseBody(res *tools.Result, err error, timedOut bool, timeout time.Duration) ([]byte, string) {
	var rpcErr *tools.RPCError
	var argErr *tools.ArgumentError
	switch {
	case err == nil && res != nil:
		if res.Content == nil {
			res.Content = []json.RawMessage{}
		}
		// 2026-07-28 requires resultType on every result; earlier revisions
		// allow extra fields, so one stored result serves both.
		if res.ResultType == "" {
			res.ResultType = "complete"
		}
		body, mErr := jsonrpc.ResultBody(res)
		if mErr != nil {
			return jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInternalError, "encoding tool result: %v", mErr)), "error"
		}
		if res.IsError {
			return body, "tool_error"
		}
		return body, "ok"
	case timedOut:
		return toolError(fmt.Sprintf("tool timed out after %s", timeout)), "timeout"
	case errors.Is(err, tools.ErrUnknownTool):
		return jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%v", err)), "error"
	case errors.As(err, &argErr):
		return jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s", argErr.Error())), "error"
	case errors.As(err, &rpcErr):
		return jsonrpc.ErrorBody(&jsonrpc.Error{Code: rpcErr.Code, Message: rpcErr.Message, Data: rpcErr.Data}), "error"
	case err != nil:
		// A tool's failure is the model's to see and correct: a result with
		// isError, not a protocol error.
		return toolError(err.Error()), "tool_error"
	default:
		return jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInternalError, "tool returned no result")), "error"
	}
}

func toolError(msg string) []byte {
	body, _ := jsonrpc.ResultBody(map[string]any{
		"content":    []map[string]string{{"type": "text", "text": msg}},
		"isError":    true,
		"resultType": "complete",
	})
	return body
}

// notifier sends a job's notifications to the gateway that waits for it.
type notifier struct {
	e   *Executor
	job *schemas.ToolJob
	c   *call
	// escalated is set once the call became a task while it ran.
	escalated atomic.Bool
	wg        sync.WaitGroup
	mrtr      callInputs // a stateless call's answers from its client (clientreq.go)
}

func (n *notifier) Progress(ctx context.Context, progress, total float64, message string) error {
	if n.job.ProgressToken == nil {
		return nil
	}
	params := map[string]any{"progressToken": json.RawMessage(n.job.ProgressToken), "progress": progress}
	if total > 0 {
		params["total"] = total
	}
	if message != "" {
		params["message"] = message
	}
	return n.send(ctx, "notifications/progress", params)
}

func (n *notifier) Log(ctx context.Context, level, logger string, data any) error {
	if !wantsLog(n.job.LogLevel, level) {
		return nil
	}
	params := map[string]any{"level": level, "data": data}
	if logger != "" {
		params["logger"] = logger
	}
	return n.send(ctx, "notifications/message", params)
}

// wantsLog reports whether a message at level goes to a client that asked
// for min. Clients opt in to logs (logging/setLevel, or _meta logLevel in
// 2026-07-28); without that, or below their level, nothing is sent.
func wantsLog(min, level string) bool {
	m := processors.LogRank(min)
	return m >= 0 && processors.LogRank(level) >= m
}

func (n *notifier) send(ctx context.Context, method string, params any) error {
	if n.job.ReplyGateway == "" || n.isTask() {
		// Tasks carry no notifications (tasks extension): their request
		// was answered with the task handle.
		return nil
	}
	msg, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
	if err != nil {
		return fmt.Errorf("encoding %s: %w", method, err)
	}
	val, err := n.e.reg.EncodeReply(&schemas.ReplyEvent{Gateway: n.job.ReplyGateway, ReplyToken: n.job.ReplyToken,
		EventID: n.job.EventID, Kind: schemas.ReplyNotification, HTTPStatus: 200, SessionID: n.job.SessionID,
		Message: msg, ProducedAt: time.Now()})
	if err != nil {
		return fmt.Errorf("encoding %s reply: %w", method, err)
	}
	n.wg.Add(1)
	// The tool's context ends when the tool returns, which may be before
	// Kafka has the record; a notification once sent must not be dropped.
	n.e.cl.Produce(context.WithoutCancel(ctx), &kgo.Record{Topic: n.e.cfg.Streams.Topics.Replies(), Key: []byte(n.job.ReplyGateway), Value: val},
		func(_ *kgo.Record, err error) {
			if err != nil {
				n.e.log.Warn("sending notification", "event", n.job.EventID, "method", method, "err", err)
			}
			n.wg.Done()
		})
	return nil
}

func (n *notifier) wait() { n.wg.Wait() }
