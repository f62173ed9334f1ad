package counting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mcpstream/mcpstream/tools"
)

// Name is the provider name, used in metrics and configuration.
const Name = "counting"

// Tool names.
const (
	// ToolTally is not idempotent: the platform must never run one call of
	// it twice, and fails a call interrupted mid-run rather than retry it.
	ToolTally = "tally"
	// ToolTallyIdempotent declares idempotentHint, so the platform may run
	// an interrupted call again.
	ToolTallyIdempotent = "tally_idempotent"
)

// Argument limits. A call_id becomes one log line, so it may not contain a
// line break; the length cap keeps each append far below PIPE_BUF-sized
// writes, which are the ones every local file system appends atomically.
const (
	MaxCallIDBytes = 256
	MaxSleep       = 10 * time.Minute
)

const inputSchema = `{"type":"object","properties":{` +
	`"call_id":{"type":"string","minLength":1,"maxLength":256,"description":"identifies the call in the execution log and the result"},` +
	`"sleep_ms":{"type":"integer","minimum":0,"maximum":600000,"description":"how long the tool sleeps after logging, in milliseconds"}},` +
	`"required":["call_id"]}`

// Provider serves tally and tally_idempotent. One value serves any number of
// concurrent calls: the only shared state is the log file, and *os.File
// serialises writes on one descriptor.
type Provider struct {
	path string
	log  *os.File
	list []tools.Tool
}

// New opens (creating if needed) the execution log at path and returns the
// provider. Opening here, not per call, makes a bad path fail the process
// at start instead of every call. Close releases the file.
func New(path string) (*Provider, error) {
	if path == "" {
		return nil, errors.New("counting: log path is empty")
	}
	// O_APPEND makes each write land at the end of the file even when
	// several processes write to it; without it they would overwrite each
	// other's lines at stale offsets.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("counting: opening execution log: %w", err)
	}
	return &Provider{path: path, log: f, list: []tools.Tool{
		{
			Name:        ToolTally,
			Title:       "Tally (not idempotent)",
			Description: "Records one execution of call_id in the execution log, sleeps sleep_ms, and returns call_id. Not idempotent: running it twice for one call is visible.",
			InputSchema: json.RawMessage(inputSchema),
			Annotations: json.RawMessage(`{"readOnlyHint":false,"destructiveHint":false,"idempotentHint":false,"openWorldHint":false}`),
			// Clients of the tasks extension may run it as a task (the task
			// failover test counts its executions).
			Execution: json.RawMessage(`{"taskSupport":"optional"}`),
		},
		{
			Name:        ToolTallyIdempotent,
			Title:       "Tally (idempotent)",
			Description: "Like tally, but declared idempotent: the platform may run an interrupted call again.",
			InputSchema: json.RawMessage(inputSchema),
			Annotations: json.RawMessage(`{"readOnlyHint":false,"destructiveHint":false,"idempotentHint":true,"openWorldHint":false}`),
		},
	}}, nil
}

// Path is the execution log this provider appends to.
func (p *Provider) Path() string { return p.path }

// Close closes the execution log. Calls after Close fail.
func (p *Provider) Close() error { return p.log.Close() }

// Name implements tools.Provider.
func (p *Provider) Name() string { return Name }

// ListTools implements tools.Provider. The list is static and sorted by name.
func (p *Provider) ListTools(ctx context.Context) ([]tools.Tool, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("counting: list tools: %w", err)
	}
	return append([]tools.Tool(nil), p.list...), nil
}

// ResultText is the text content a successful call of either tool returns:
// clients compare it with what they sent to check the answer is theirs.
func ResultText(callID string) string { return "tallied " + callID }

type arguments struct {
	CallID  string `json:"call_id"`
	SleepMS *int64 `json:"sleep_ms"`
}

// CallTool implements tools.Provider.
func (p *Provider) CallTool(ctx context.Context, call tools.Call, _ tools.Notifier) (*tools.Result, error) {
	if call.Name != ToolTally && call.Name != ToolTallyIdempotent {
		return nil, fmt.Errorf("counting: %q: %w", call.Name, tools.ErrUnknownTool)
	}
	args, err := parseArguments(call.Arguments)
	if err != nil {
		return nil, fmt.Errorf("counting: %s: %w", call.Name, err)
	}
	// The execution record comes first, before anything that can fail or
	// wait: a body that was entered at all is counted, so a process killed
	// during the sleep still shows up as one execution.
	if _, err := p.log.Write([]byte(args.CallID + "\n")); err != nil {
		return nil, fmt.Errorf("counting: %s: recording call %q: %w", call.Name, args.CallID, err)
	}
	if args.SleepMS != nil && *args.SleepMS > 0 {
		t := time.NewTimer(time.Duration(*args.SleepMS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("counting: %s: call %q interrupted while sleeping: %w", call.Name, args.CallID, ctx.Err())
		case <-t.C:
		}
	}
	text, err := json.Marshal(map[string]string{"type": "text", "text": ResultText(args.CallID)})
	if err != nil {
		return nil, fmt.Errorf("counting: %s: encoding result: %w", call.Name, err)
	}
	return &tools.Result{Content: []json.RawMessage{text}}, nil
}

func parseArguments(raw json.RawMessage) (arguments, error) {
	var a arguments
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return a, &tools.ArgumentError{Msg: "arguments must be a JSON object with call_id"}
	}
	if err := json.Unmarshal(trimmed, &a); err != nil {
		return a, &tools.ArgumentError{Msg: "call_id must be a string and sleep_ms an integer: " + err.Error()}
	}
	switch {
	case a.CallID == "":
		return a, &tools.ArgumentError{Msg: "call_id is required"}
	case len(a.CallID) > MaxCallIDBytes:
		return a, &tools.ArgumentError{Msg: fmt.Sprintf("call_id is longer than %d bytes", MaxCallIDBytes)}
	case strings.ContainsAny(a.CallID, "\r\n"):
		return a, &tools.ArgumentError{Msg: "call_id must not contain line breaks"}
	case a.SleepMS != nil && (*a.SleepMS < 0 || time.Duration(*a.SleepMS)*time.Millisecond > MaxSleep):
		return a, &tools.ArgumentError{Msg: fmt.Sprintf("sleep_ms must be between 0 and %d", MaxSleep.Milliseconds())}
	}
	return a, nil
}
