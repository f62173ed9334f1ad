package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/tools"
)

func TestResponseBody(t *testing.T) {
	text := json.RawMessage(`{"type":"text","text":"hi"}`)
	for _, tc := range []struct {
		name     string
		res      *tools.Result
		err      error
		timedOut bool
		outcome  string
		code     int    // JSON-RPC error code; 0: a result
		contains string // in the body
	}{
		{name: "ok", res: &tools.Result{Content: []json.RawMessage{text}}, outcome: "ok", contains: `"resultType":"complete"`},
		{name: "nil content becomes empty", res: &tools.Result{}, outcome: "ok", contains: `"content":[]`},
		{name: "tool error result", res: &tools.Result{Content: []json.RawMessage{text}, IsError: true}, outcome: "tool_error", contains: `"isError":true`},
		{name: "timeout", err: errors.New("context deadline exceeded"), timedOut: true, outcome: "timeout", contains: "timed out"},
		{name: "unknown tool", err: fmt.Errorf("registry: %w", tools.ErrUnknownTool), outcome: "error", code: jsonrpc.CodeInvalidParams},
		{name: "bad arguments", err: &tools.ArgumentError{Msg: "x must be a number"}, outcome: "error", code: jsonrpc.CodeInvalidParams, contains: "x must be a number"},
		{name: "protocol error passes through", err: tools.NewMissingCapabilityError("needs sampling", map[string]any{"sampling": map[string]any{}}),
			outcome: "error", code: tools.CodeMissingRequiredClientCapability, contains: `"requiredCapabilities":{"sampling":{}}`},
		{name: "other failure is an isError result", err: errors.New("disk full"), outcome: "tool_error", contains: "disk full"},
		{name: "no result and no error", outcome: "error", code: jsonrpc.CodeInternalError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, outcome := responseBody(tc.res, tc.err, tc.timedOut, time.Second)
			if outcome != tc.outcome {
				t.Errorf("outcome %q, want %q", outcome, tc.outcome)
			}
			if !json.Valid(body) {
				t.Fatalf("invalid JSON %s", body)
			}
			code, isErr := jsonrpc.IsError(body)
			if tc.code != 0 && (!isErr || code != tc.code) {
				t.Errorf("body %s, want error %d", body, tc.code)
			}
			if tc.code == 0 && isErr {
				t.Errorf("body %s is an error, want a result", body)
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("body %s lacks %s", body, tc.contains)
			}
		})
	}
}

func TestWantsLog(t *testing.T) {
	for _, tc := range []struct {
		min, level string
		want       bool
	}{
		{"", "emergency", false}, // no opt-in, no logs
		{"debug", "debug", true},
		{"info", "debug", false},
		{"warning", "error", true},
		{"warning", "notice", false},
		{"bogus", "error", false},
		{"info", "bogus", false},
	} {
		if got := wantsLog(tc.min, tc.level); got != tc.want {
			t.Errorf("wantsLog(%q, %q) = %v, want %v", tc.min, tc.level, got, tc.want)
		}
	}
}
