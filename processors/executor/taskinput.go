package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/tools"
)

// A tool running as a 2026-07-28 task asks its client through the task:
// the requests are recorded in the toolcalls table (INPUT control), where
// tasks/get shows them with status input_required; the client answers with
// tasks/update, through any gateway, and the processor hands the answers to
// this executor (TASK_INPUT command). The tool waits meanwhile; a partial
// answer leaves the rest outstanding.

func (n *notifier) isTask() bool { return n.job.Task || n.escalated.Load() }

var _ tools.Escalator = (*notifier)(nil)

func (n *notifier) taskInput(ctx context.Context, reqs []tools.InputRequest) ([]json.RawMessage, error) {
	if n.job.SessionID != "" || n.c == nil {
		// A 2025-11-25 task's request was answered with the task handle:
		// there is no stream left to ask on.
		return nil, tools.ErrNoRequester
	}
	asked := make(map[string]any, len(reqs))
	for _, r := range reqs {
		if r.Key == "" {
			return nil, fmt.Errorf("input request %s has no key", r.Method)
		}
		var params any = map[string]any{}
		if r.Params != nil {
			params = r.Params
		}
		asked[r.Key] = map[string]any{"method": r.Method, "params": params}
	}
	payload, err := json.Marshal(asked)
	if err != nil {
		return nil, fmt.Errorf("encoding input requests: %w", err)
	}
	val, err := n.e.reg.EncodeControl(&schemas.ToolControl{EventID: n.job.EventID, Kind: schemas.ControlInput,
		Executor: n.e.cfg.ID, Incarnation: n.e.inc, Payload: payload, ProducedAt: time.Now()})
	if err != nil {
		return nil, fmt.Errorf("encoding input requests: %w", err)
	}
	rec := &kgo.Record{Topic: n.e.cfg.Streams.Topics.ToolControls(), Key: []byte(n.job.EventID), Value: val}
	if err := n.e.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return nil, fmt.Errorf("recording input requests: %w", err)
	}
	got := map[string]json.RawMessage{}
	for len(got) < len(reqs) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case answers := <-n.c.inputs:
			for k, v := range answers {
				if _, ok := asked[k]; ok {
					got[k] = v
				}
			}
		}
	}
	out := make([]json.RawMessage, len(reqs))
	for i, r := range reqs {
		out[i] = got[r.Key]
	}
	return out, nil
}

func deliverTaskInput(c *call, cmd *schemas.ExecutorCommand) {
	var answers map[string]json.RawMessage
	if json.Unmarshal(cmd.Message, &answers) != nil {
		return
	}
	select {
	case c.inputs <- answers:
	default: // the tool is not waiting and the buffer is full: drop
	}
}

// Escalate turns the running call into a task, for a 2026-07-28 caller
// that declared the tasks extension: the caller gets the task handle now
// and polls; the tool goes on.
func (n *notifier) Escalate(ctx context.Context) error {
	if n.isTask() {
		return nil
	}
	if n.job.SessionID != "" || !tools.DeclaresTasks(n.job.ClientCapabilities) {
		return tools.ErrCannotEscalate
	}
	if err := n.e.sendControlSync(ctx, schemas.ControlEscalate, n.job.EventID, n.e.cfg.ID, n.e.inc, false, ""); err != nil {
		return fmt.Errorf("escalating to a task: %w", err)
	}
	// From here on the caller polls: nothing more goes to its stream.
	n.escalated.Store(true)
	return nil
}
