package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools"
)

// Config configures an executor.
type Config struct {
	Streams streams.Config
	// ID names this executor in results and metrics. Required.
	ID string
	// Concurrency bounds jobs running at once. Zero means 64.
	Concurrency int
	// ToolTimeout bounds one tool run. Zero means 5 minutes.
	ToolTimeout time.Duration
	Logger      *slog.Logger
	// Observe, if set, is called after each job with the tool name, how it
	// ended ("ok", "tool_error", "error", "timeout") and its duration.
	Observe func(tool, outcome string, d time.Duration)
}

// Executor runs jobs.
type Executor struct {
	cfg   Config
	reg   *schemas.Registry
	tools *tools.Registry
	log   *slog.Logger
	cl    *kgo.Client

	mu      sync.Mutex
	pending map[int32]*partitionTrack
	running sync.WaitGroup
}

// New validates cfg and builds the Kafka client (it connects lazily).
func New(reg *schemas.Registry, tr *tools.Registry, cfg Config) (*Executor, error) {
	cfg.Streams = cfg.Streams.WithDefaults()
	if cfg.ID == "" {
		return nil, errors.New("executor: ID is required")
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 64
	}
	if cfg.ToolTimeout == 0 {
		cfg.ToolTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Executor{cfg: cfg, reg: reg, tools: tr, log: cfg.Logger.With("executor", cfg.ID), pending: map[int32]*partitionTrack{}}
	t := cfg.Streams.Topics
	cl, err := streams.NewClient(cfg.Streams, "executor-"+cfg.ID, cfg.Logger,
		kgo.ConsumerGroup(t.ExecutorsGroup()),
		kgo.ConsumeTopics(t.Jobs()),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(250*time.Millisecond),
		kgo.SessionTimeout(12*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.OnPartitionsRevoked(e.onRevoked),
		kgo.OnPartitionsLost(e.onRevoked),
	)
	if err != nil {
		return nil, err
	}
	e.cl = cl
	return e, nil
}

// Run consumes jobs until ctx is done, then waits for running jobs to
// report (bounded by ToolTimeout) and commits.
func (e *Executor) Run(ctx context.Context) error {
	defer e.cl.Close()
	sem := make(chan struct{}, e.cfg.Concurrency)
	// Committing after every job would put a broker round trip on each one;
	// a short period bounds what a crash re-runs instead.
	stopCommits := make(chan struct{})
	commitsDone := make(chan struct{})
	go func() {
		defer close(commitsDone)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopCommits:
				return
			case <-t.C:
				e.commit(ctx)
			}
		}
	}()
	for {
		fetches := e.cl.PollRecords(ctx, e.cfg.Concurrency)
		if ctx.Err() != nil {
			break
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			for _, fe := range errs {
				e.log.Warn("fetching jobs", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
			}
		}
		for _, rec := range fetches.Records() {
			job, err := e.reg.DecodeJob(rec.Value)
			e.track(rec)
			if err != nil {
				// An undecodable job can never run; skipping it is the only
				// way forward, and it is logged for the operator.
				e.log.Error("dropping undecodable job", "partition", rec.Partition, "offset", rec.Offset, "err", err)
				e.done(rec)
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			e.running.Add(1)
			go func() {
				defer e.running.Done()
				defer func() { <-sem }()
				e.runJob(context.WithoutCancel(ctx), job)
				e.done(rec)
			}()
		}
		if ctx.Err() != nil {
			break
		}
	}
	e.running.Wait()
	close(stopCommits)
	<-commitsDone
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.commit(cctx)
	return nil
}

func (e *Executor) runJob(ctx context.Context, job *schemas.ToolJob) {
	start := time.Now()
	n := &notifier{e: e, job: job}
	tctx, cancel := context.WithTimeout(ctx, e.cfg.ToolTimeout)
	if job.ClientCapabilities != nil {
		tctx = tools.WithClientCapabilities(tctx, job.ClientCapabilities)
	} else {
		tctx = tools.WithClientCapabilities(tctx, json.RawMessage(`{}`))
	}
	res, err := e.tools.CallTool(tctx, tools.Call{Name: job.Tool, Arguments: job.Arguments,
		ProgressToken: job.ProgressToken, SessionID: job.SessionID, EventID: job.EventID}, n)
	timedOut := tctx.Err() == context.DeadlineExceeded
	cancel()
	body, outcome := responseBody(res, err, timedOut, e.cfg.ToolTimeout)
	if e.cfg.Observe != nil {
		e.cfg.Observe(job.Tool, outcome, time.Since(start))
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
	rec := &kgo.Record{Topic: e.cfg.Streams.Topics.ToolResults(), Key: []byte(job.EventID), Value: val}
	for attempt := 0; ; attempt++ {
		if err := e.cl.ProduceSync(ctx, rec).FirstErr(); err == nil {
			e.replyFirst(ctx, job, body)
			return
		} else if attempt >= 10 {
			// Leaving the offset uncommitted (we still mark it done, but a
			// crash before commit re-runs it) is all we can do; the log says
			// which call is affected.
			e.log.Error("producing result failed", "event", job.EventID, "err", err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
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
	wg  sync.WaitGroup
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
	if n.job.ReplyGateway == "" {
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
