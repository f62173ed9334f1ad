package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools"
)

func newTestExecutor(t *testing.T, key string) *Executor {
	t.Helper()
	tr, err := tools.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(schemas.MustLoad(), tr, Config{Streams: streams.Config{Brokers: []string{"127.0.0.1:1"}}, ID: "x1", StateKey: []byte(key)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A stateless call's rounds: the first ends input_required with a state
// carrying what the run used; the retry with the state and the new answer
// gets both; a state from another deployment key is refused.
func TestStatelessCallRounds(t *testing.T) {
	e := newTestExecutor(t, "k")
	job := &schemas.ToolJob{EventID: "e1", Principal: "anonymous", Tool: "t", Arguments: []byte(`{"a":1}`),
		InputResponses: []byte(`{"step1":{"action":"accept","content":{"name":"Alice"}}}`)}
	n := &notifier{e: e, job: job}
	step1 := tools.InputRequest{Key: "step1", Method: tools.MethodElicit}
	step2 := tools.InputRequest{Key: "step2", Method: tools.MethodElicit}
	if _, err := n.Request(context.Background(), step1); err != nil {
		t.Fatalf("step1 answered in inputResponses: %v", err)
	}
	_, err := n.Request(context.Background(), step2)
	body, ok := n.inputRequired(fmt.Errorf("tool: %w", err))
	if !ok {
		t.Fatalf("step2 missing gave %v, not input required", err)
	}
	var res struct {
		Result struct {
			ResultType    string                     `json:"resultType"`
			InputRequests map[string]json.RawMessage `json:"inputRequests"`
			RequestState  string                     `json:"requestState"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &res); err != nil || res.Result.ResultType != "input_required" || res.Result.InputRequests["step2"] == nil {
		t.Fatalf("input_required body %s (%v)", body, err)
	}
	round, answers, err := e.states().Open(n.origin(), res.Result.RequestState)
	if err != nil || round != 1 || answers["step1"] == nil || answers["step2"] != nil {
		t.Fatalf("state holds round %d, answers %v (%v); want round 1 with step1", round, answers, err)
	}
	// Round 2: only step2 comes with the retry, step1 from the state.
	retry := *job
	retry.InputResponses, retry.RequestState = []byte(`{"step2":{"action":"accept","content":{"color":"blue"}}}`), res.Result.RequestState
	n2 := &notifier{e: e, job: &retry}
	out, err := n2.Request(context.Background(), step1, step2)
	if err != nil || !strings.Contains(string(out[0]), "Alice") || !strings.Contains(string(out[1]), "blue") {
		t.Fatalf("round 2: %s, %v", out, err)
	}
	// Another deployment's executor refuses the state.
	other := &notifier{e: newTestExecutor(t, "other"), job: &retry}
	var rpc *tools.RPCError
	if _, err := other.Request(context.Background(), step1); !errors.As(err, &rpc) || rpc.Code != -32602 {
		t.Fatalf("foreign state: %v", err)
	}
	// A 2025-11-25 call's tool never gets InputRequiredError turned into a
	// result: nothing was asked through inputs.
	if _, ok := (&notifier{e: e, job: &schemas.ToolJob{SessionID: "s"}}).inputRequired(&tools.InputRequiredError{Requests: []tools.InputRequest{step1}}); ok {
		t.Fatal("a session call produced an input_required result")
	}
}

func TestClientResult(t *testing.T) {
	if r, err := clientResult(tools.MethodListRoots, []byte(`{"jsonrpc":"2.0","id":"x","result":{"roots":[]}}`)); err != nil || string(r) != `{"roots":[]}` {
		t.Fatalf("result: %s, %v", r, err)
	}
	_, err := clientResult(tools.MethodElicit, []byte(`{"jsonrpc":"2.0","id":"x","error":{"code":-1,"message":"user closed the dialog"}}`))
	var ce *tools.ClientError
	if !errors.As(err, &ce) || ce.Code != -1 || ce.Method != tools.MethodElicit {
		t.Fatalf("error response: %v", err)
	}
	if _, err := clientResult(tools.MethodElicit, []byte(`{"jsonrpc":"2.0","id":"x","result":{"content":{}}}`)); err == nil {
		t.Fatal("an elicitation result without action was taken")
	}
}

// Responses are matched to pending requests by sequence, session and
// principal; everything else is refused without touching the request.
func TestClientResponseMatching(t *testing.T) {
	e := newTestExecutor(t, "k")
	job := &schemas.ToolJob{EventID: "e1", SessionID: "s1", Principal: "alice"}
	seq, p := e.creq.add(job, tools.MethodElicit)
	id := streams.ClientRequestID("x1", e.inc, seq)
	msg := []byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"result":{"action":"accept"}}`, id))
	cmd := func(sid, principal string) *schemas.ExecutorCommand {
		return &schemas.ExecutorCommand{Executor: "x1", Incarnation: e.inc, Kind: schemas.CommandClientResponse,
			Message: msg, SessionID: sid, Principal: principal}
	}
	e.clientResponse(context.Background(), cmd("s2", "alice"))
	e.clientResponse(context.Background(), cmd("s1", "mallory"))
	select {
	case m := <-p.answer:
		t.Fatalf("a foreign response was taken: %s", m)
	default:
	}
	e.clientResponse(context.Background(), cmd("s1", "alice"))
	select {
	case m := <-p.answer:
		if string(m) != string(msg) {
			t.Fatalf("answer %s", m)
		}
	default:
		t.Fatal("the right response was not taken")
	}
}
