package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/schemas"
)

// call is a job this executor claimed and has not finished with.
type call struct {
	job        *schemas.ToolJob
	idempotent bool
	version    uint64 // e.version when it was added: beats at or past it list it
	cmds       chan *schemas.ExecutorCommand
	inputs     chan map[string]json.RawMessage // tasks/update answers (taskinput.go)

	ctx    context.Context // the tool body's context
	cancel context.CancelFunc

	mu         sync.Mutex
	started    bool
	isCancel   bool
	isAbandon  bool
	finishedCh chan struct{}
}

func (c *call) cancelled() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.isCancel }
func (c *call) abandoned() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.isAbandon }

// idempotent reports whether a tool may run twice without harm, from its
// annotations: idempotentHint, or readOnlyHint (no effects at all).
func (e *Executor) idempotent(tool string) bool {
	_, t, ok := e.tools.Lookup(tool)
	if !ok || len(t.Annotations) == 0 {
		return false
	}
	var a struct {
		Idempotent bool `json:"idempotentHint"`
		ReadOnly   bool `json:"readOnlyHint"`
	}
	if json.Unmarshal(t.Annotations, &a) != nil {
		return false
	}
	return a.Idempotent || a.ReadOnly
}

// admit takes one delivered job in: it is added to the calls this
// executor holds (and so to its next beat) and given a slot. It returns nil
// when there is nothing to claim: an undecodable record, or a call this
// executor already holds (delivered again by a rebalance or a redispatch).
func (e *Executor) admit(ctx context.Context, rec *kgo.Record) (*call, error) {
	job, err := e.reg.DecodeJob(rec.Value)
	if err != nil {
		// An undecodable job can never run; skipping it is the only way
		// forward, and it is logged for the operator.
		e.log.Error("dropping undecodable job", "partition", rec.Partition, "offset", rec.Offset, "err", err)
		return nil, nil
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	e.mu.Lock()
	if _, ok := e.held[job.EventID]; ok {
		e.mu.Unlock()
		<-e.sem
		return nil, nil
	}
	c := &call{job: job, idempotent: e.idempotent(job.Tool), cmds: make(chan *schemas.ExecutorCommand, 8),
		inputs: make(chan map[string]json.RawMessage, 8), finishedCh: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	e.version++
	c.version = e.version
	e.held[job.EventID] = c
	e.mu.Unlock()
	return c, nil
}

// claimBatch claims admitted calls. The order is what makes a crash
// anywhere safe: first a durable beat lists the calls (so that if this
// process dies from here on, the others report them orphaned), then the
// claims are made durable, and only then may the job records be
// acknowledged (before that, a crash leaves them to be delivered again).
// Waiting for the grants is not on this path: follow does it per call.
func (e *Executor) claimBatch(ctx context.Context, calls []*call) error {
	if len(calls) == 0 {
		return nil
	}
	var v uint64
	for _, c := range calls {
		v = max(v, c.version)
	}
	if !e.waitDurable(ctx, v) {
		return ctx.Err()
	}
	recs := make([]*kgo.Record, 0, len(calls))
	for _, c := range calls {
		rec, err := e.control(schemas.ControlClaim, c.job.EventID, e.cfg.ID, e.inc, c.idempotent, "")
		if err != nil {
			return fmt.Errorf("encoding claim: %w", err)
		}
		recs = append(recs, rec)
	}
	if err := e.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("producing claims: %w", err)
	}
	for _, c := range calls {
		if c.idempotent {
			// Running twice is harmless for these, so the round trip to the
			// processor is not on the call's path; a DROP or CONFLICT
			// abandons the run.
			e.startBody(ctx, c)
		}
		go e.follow(ctx, c)
	}
	return nil
}

// follow waits for the processor's answer to a claim and acts on it.
func (e *Executor) follow(ctx context.Context, c *call) {
	job := c.job
	retry := time.NewTimer(e.claimRetry())
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return // releaseUnstarted gives it back
		case <-retry.C:
			// No answer: the processor owning the partition may be moving.
			// Claims are idempotent, so ask again.
			e.sendControl(ctx, schemas.ControlClaim, job.EventID, e.cfg.ID, e.inc, c.idempotent, "")
			retry.Reset(e.claimRetry())
		case cmd := <-c.cmds:
			switch cmd.Kind {
			case schemas.CommandGrant:
				e.startBody(ctx, c)
				return
			case schemas.CommandDrop:
				e.abandon(c)
				return
			case schemas.CommandConflict:
				e.abandon(c)
				e.resolve(ctx, c, cmd.HolderExecutor, cmd.HolderIncarnation)
				return
			}
		}
	}
}

func (e *Executor) claimRetry() time.Duration { return e.cfg.Lease / 2 }

func (c *call) isStarted() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.started }

// startBody runs the tool once per call, whatever the number of grants.
func (e *Executor) startBody(ctx context.Context, c *call) {
	c.mu.Lock()
	if c.started || c.isAbandon {
		c.mu.Unlock()
		return
	}
	c.started = true
	c.mu.Unlock()
	e.running.Add(1)
	go func() {
		defer e.running.Done()
		defer func() { <-e.sem }()
		defer close(c.finishedCh)
		e.runJob(context.WithoutCancel(ctx), c)
	}()
}

// abandon gives up a call this executor does not hold: a body that started
// early is cancelled and its result discarded.
func (e *Executor) abandon(c *call) {
	c.mu.Lock()
	started := c.started
	c.isAbandon = true
	c.mu.Unlock()
	c.cancel()
	if !started {
		<-e.sem
		e.forget(c.job.EventID)
		return
	}
	go func() {
		<-c.finishedCh
		e.forget(c.job.EventID)
	}()
}

// resolve settles a claim answered CONFLICT: another executor holds the
// call. If the holder is alive and lists the call in its beats, its death
// would be noticed, so this delivery can go. If the holder is dead, this
// executor reports the orphan, and the processor decides (run it again if
// idempotent, answer -31003 if not). The job record is acknowledged
// either way: the holder's beats list the call, so its death is noticed.
func (e *Executor) resolve(ctx context.Context, c *call, holder, holderInc string) {
	id := c.job.EventID
	deadline := time.Now().Add(2 * e.cfg.Lease)
	tick := time.NewTicker(e.beatInterval())
	defer tick.Stop()
	reclaim := time.NewTicker(e.claimRetry())
	defer reclaim.Stop()
	for {
		verdict, reason := e.holderVerdict(holder, holderInc, id)
		switch {
		case verdict == holderTracks:
			return
		case verdict == holderDead, time.Now().After(deadline):
			if reason == "" {
				reason = "holder never listed the call in its beats"
			}
			if err := e.sendControlSync(ctx, schemas.ControlOrphan, id, holder, holderInc, false, reason); err != nil {
				// The survivors' own reading of the holder's beats reports
				// it as well; this was only the quicker path.
				e.log.Warn("reporting orphaned call", "event", id, "holder", holder, "err", err)
				return
			}
			e.log.Info("reported orphaned call", "event", id, "holder", holder, "holder_incarnation", holderInc, "reason", reason)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-reclaim.C:
			// The call may have completed meanwhile (a result and this claim
			// crossed): the processor then answers DROP.
			e.sendControl(ctx, schemas.ControlClaim, id, e.cfg.ID, e.inc, c.idempotent, "")
		case cmd := <-c.cmds:
			if cmd.Kind == schemas.CommandDrop {
				return
			}
		}
	}
}

// forget removes a finished or abandoned call from the beats.
func (e *Executor) forget(id string) {
	e.mu.Lock()
	delete(e.held, id)
	e.mu.Unlock()
}

// releaseUnstarted gives back, at shutdown, calls granted or claimed that
// never started: they may run elsewhere whatever their annotations.
func (e *Executor) releaseUnstarted(ctx context.Context) {
	e.mu.Lock()
	var ids []string
	for id, c := range e.held {
		if !c.isStarted() {
			ids = append(ids, id)
		}
	}
	e.mu.Unlock()
	for _, id := range ids {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := e.sendControlSync(cctx, schemas.ControlRelease, id, e.cfg.ID, e.inc, false, "executor stopping"); err == nil {
			e.forget(id)
		}
		cancel()
	}
}

func (e *Executor) control(kind schemas.ToolControlKind, id, executor, inc string, idem bool, reason string) (*kgo.Record, error) {
	val, err := e.reg.EncodeControl(&schemas.ToolControl{EventID: id, Kind: kind, Executor: executor, Incarnation: inc,
		Idempotent: idem, Reason: reason, ProducedAt: time.Now()})
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: e.cfg.Streams.Topics.ToolControls(), Key: []byte(id), Value: val}, nil
}

func (e *Executor) sendControl(ctx context.Context, kind schemas.ToolControlKind, id, executor, inc string, idem bool, reason string) {
	rec, err := e.control(kind, id, executor, inc, idem, reason)
	if err != nil {
		e.log.Error("encoding control", "kind", kind, "event", id, "err", err)
		return
	}
	e.cl.Produce(context.WithoutCancel(ctx), rec, func(_ *kgo.Record, err error) {
		if err != nil {
			e.log.Warn("sending control", "kind", kind, "event", id, "err", err)
		}
	})
}

func (e *Executor) sendControlSync(ctx context.Context, kind schemas.ToolControlKind, id, executor, inc string, idem bool, reason string) error {
	rec, err := e.control(kind, id, executor, inc, idem, reason)
	if err != nil {
		return err
	}
	return e.cl.ProduceSync(ctx, rec).FirstErr()
}

// readCommands delivers the processor's answers and orders addressed to
// this incarnation.
func (e *Executor) readCommands(ctx context.Context) {
	for {
		fetches := e.cmds.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			e.log.Warn("fetching commands", "topic", t, "partition", p, "err", err)
		})
		fetches.EachRecord(func(rec *kgo.Record) {
			cmd, err := e.reg.DecodeCommand(rec.Value)
			if err != nil {
				e.log.Error("dropping undecodable command", "offset", rec.Offset, "err", err)
				return
			}
			if cmd.Kind == schemas.CommandClientResponse {
				// Answered even when meant for a past life: the client
				// learns its response came too late (clientreq.go).
				if cmd.Executor == e.cfg.ID {
					e.clientResponse(ctx, cmd)
				}
				return
			}
			if cmd.Executor != e.cfg.ID || cmd.Incarnation != e.inc {
				return // another executor sharing the partition, or a past life
			}
			e.mu.Lock()
			c := e.held[cmd.EventID]
			e.mu.Unlock()
			if c == nil {
				return
			}
			if cmd.Kind == schemas.CommandTaskInput {
				deliverTaskInput(c, cmd)
				return
			}
			if cmd.Kind == schemas.CommandCancel {
				c.mu.Lock()
				c.isCancel = true
				c.mu.Unlock()
				c.cancel()
				return
			}
			select {
			case c.cmds <- cmd:
			default: // repeated answers to repeated claims; one is enough
			}
		})
	}
}
