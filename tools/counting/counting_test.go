package counting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/tools"
)

func newProvider(t *testing.T) *Provider {
	t.Helper()
	p, err := New(filepath.Join(t.TempDir(), "executions.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func call(name, args string) tools.Call {
	return tools.Call{Name: name, Arguments: json.RawMessage(args), EventID: "ev"}
}

func textOf(t *testing.T, res *tools.Result) string {
	t.Helper()
	if res == nil || len(res.Content) != 1 {
		t.Fatalf("result %+v: want one content block", res)
	}
	var c struct{ Type, Text string }
	if err := json.Unmarshal(res.Content[0], &c); err != nil || c.Type != "text" {
		t.Fatalf("content %s: want text (%v)", res.Content[0], err)
	}
	return c.Text
}

func readCounts(t *testing.T, path string) Counts {
	t.Helper()
	c, err := ReadCounts(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestListToolsDeclaresIdempotence(t *testing.T) {
	p := newProvider(t)
	list, err := p.ListTools(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{ToolTally: false, ToolTallyIdempotent: true}
	if len(list) != len(want) {
		t.Fatalf("got %d tools, want %d", len(list), len(want))
	}
	if _, err := tools.NewRegistry(p); err != nil {
		t.Fatalf("registry refuses the provider: %v", err)
	}
	for _, tool := range list {
		idem, ok := want[tool.Name]
		if !ok {
			t.Errorf("unexpected tool %q", tool.Name)
			continue
		}
		var ann struct {
			IdempotentHint *bool `json:"idempotentHint"`
			ReadOnlyHint   *bool `json:"readOnlyHint"`
		}
		if err := json.Unmarshal(tool.Annotations, &ann); err != nil {
			t.Fatalf("%s annotations %s: %v", tool.Name, tool.Annotations, err)
		}
		// An absent hint means "false" in MCP, but the platform's decision
		// hinges on it, so both tools state it.
		if ann.IdempotentHint == nil || *ann.IdempotentHint != idem {
			t.Errorf("%s idempotentHint = %v, want %v", tool.Name, ann.IdempotentHint, idem)
		}
		if ann.ReadOnlyHint == nil || *ann.ReadOnlyHint {
			t.Errorf("%s readOnlyHint = %v, want false (readOnly implies a retry is safe)", tool.Name, ann.ReadOnlyHint)
		}
		var schema struct {
			Type     string   `json:"type"`
			Required []string `json:"required"`
		}
		if err := json.Unmarshal(tool.InputSchema, &schema); err != nil || schema.Type != "object" ||
			len(schema.Required) != 1 || schema.Required[0] != "call_id" {
			t.Errorf("%s input schema %s: want an object requiring call_id (%v)", tool.Name, tool.InputSchema, err)
		}
		if tool.Description == "" {
			t.Errorf("%s has no description", tool.Name)
		}
	}
}

func TestCallRecordsThenAnswers(t *testing.T) {
	p := newProvider(t)
	for i, name := range []string{ToolTally, ToolTallyIdempotent, ToolTally} {
		id := fmt.Sprintf("call-%d", i%2)
		res, err := p.CallTool(t.Context(), call(name, `{"call_id":"`+id+`"}`), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := textOf(t, res); got != ResultText(id) {
			t.Errorf("%s answered %q, want %q", name, got, ResultText(id))
		}
		if res.IsError {
			t.Errorf("%s: isError set", name)
		}
	}
	c := readCounts(t, p.Path())
	if c["call-0"] != 2 || c["call-1"] != 1 || c.Total() != 3 {
		t.Errorf("counts %v, want call-0:2 call-1:1", c)
	}
	if r := c.Repeated(); len(r) != 1 || r["call-0"] != 2 {
		t.Errorf("Repeated() = %v, want call-0:2", r)
	}
}

func TestSleepHappensAfterTheRecord(t *testing.T) {
	p := newProvider(t)
	start := time.Now()
	if _, err := p.CallTool(t.Context(), call(ToolTally, `{"call_id":"slow","sleep_ms":60}`), nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("sleep_ms 60 returned after %s", d)
	}

	// A call cancelled mid-sleep was executed: its line is already there.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := p.CallTool(ctx, call(ToolTally, `{"call_id":"cut","sleep_ms":600000}`), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled call returned %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled call took %s to return", d)
	}
	if c := readCounts(t, p.Path()); c["slow"] != 1 || c["cut"] != 1 {
		t.Errorf("counts %v, want slow:1 cut:1", c)
	}
}

func TestBadCallsRecordNothing(t *testing.T) {
	p := newProvider(t)
	long := make([]byte, MaxCallIDBytes+1)
	for i := range long {
		long[i] = 'x'
	}
	for _, args := range []string{
		``, `null`, `[]`, `{}`, `{"call_id":""}`, `{"call_id":7}`, `{"call_id":"a\nb"}`,
		`{"call_id":"` + string(long) + `"}`, `{"call_id":"a","sleep_ms":-1}`,
		`{"call_id":"a","sleep_ms":1.5}`, `{"call_id":"a","sleep_ms":600001}`,
	} {
		_, err := p.CallTool(t.Context(), call(ToolTally, args), nil)
		var ae *tools.ArgumentError
		if !errors.As(err, &ae) {
			t.Errorf("arguments %.40q: got %v, want an *ArgumentError", args, err)
		}
	}
	if _, err := p.CallTool(t.Context(), call("nope", `{"call_id":"a"}`), nil); !errors.Is(err, tools.ErrUnknownTool) {
		t.Errorf("unknown tool: got %v, want ErrUnknownTool", err)
	}
	if c := readCounts(t, p.Path()); c.Total() != 0 {
		t.Errorf("rejected calls were recorded: %v", c)
	}
}

func TestNewRejectsBadPath(t *testing.T) {
	if _, err := New(""); err == nil {
		t.Error("New(\"\") succeeded")
	}
	if _, err := New(filepath.Join(t.TempDir(), "missing-dir", "log")); err == nil {
		t.Error("New in a missing directory succeeded")
	}
}

func TestParseCounts(t *testing.T) {
	c, err := parseCounts([]byte("a\nb\na\n"))
	if err != nil || len(c) != 2 || c["a"] != 2 || c["b"] != 1 {
		t.Errorf("parseCounts = %v, %v", c, err)
	}
	for _, bad := range []string{"a\nb", "a\n\nb\n", "\n"} {
		if _, err := parseCounts([]byte(bad)); err == nil {
			t.Errorf("parseCounts(%q) accepted a torn or empty line", bad)
		}
	}
	if c, err := ReadCounts(filepath.Join(t.TempDir(), "none")); err != nil || len(c) != 0 {
		t.Errorf("missing log: %v, %v; want no executions", c, err)
	}
}

// Providers in several processes share one log; concurrent appends must
// neither lose nor tear lines.
const helperEnv = "COUNTING_TEST_HELPER"

// TestHelperProcess is not a test: it is the child process of the tests
// below, running one provider over the log named in the environment.
func TestHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		return
	}
	var h struct {
		Path   string
		Prefix string
		Calls  int
		Sleep  int
	}
	if err := json.Unmarshal([]byte(spec), &h); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	p, err := New(h.Path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for i := g; i < h.Calls; i += 4 {
				args := fmt.Sprintf(`{"call_id":"%s-%d","sleep_ms":%d}`, h.Prefix, i, h.Sleep)
				if _, err := p.CallTool(context.Background(), call(ToolTally, args), nil); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

func helper(t *testing.T, path, prefix string, calls, sleepMS int) *exec.Cmd {
	t.Helper()
	spec, _ := json.Marshal(map[string]any{"Path": path, "Prefix": prefix, "Calls": calls, "Sleep": sleepMS})
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func TestConcurrentProcessesShareTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.log")
	const procs, calls = 3, 2000
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmds[i] = helper(t, path, "p"+strconv.Itoa(i), calls, 0)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	c := readCounts(t, path)
	if c.Total() != procs*calls || len(c) != procs*calls {
		t.Fatalf("%d executions of %d call ids, want %d of %d", c.Total(), len(c), procs*calls, procs*calls)
	}
	if r := c.Repeated(); len(r) != 0 {
		t.Fatalf("repeated: %v", r)
	}
}

// TestRecordSurvivesSIGKILL kills a writer while its calls sleep: every
// call it entered stays counted, because the line left the process with
// write(2) before the sleep.
func TestRecordSurvivesSIGKILL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "killed.log")
	cmd := helper(t, path, "k", 4, 600000)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := ReadCounts(path)
		if err == nil && c.Total() == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer recorded %v within 30s, want 4 calls", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("writer ended with %v, want killed by SIGKILL", err)
	}
	c := readCounts(t, path)
	for i := 0; i < 4; i++ {
		if c["k-"+strconv.Itoa(i)] != 1 {
			t.Errorf("after SIGKILL counts are %v, want each of k-0..k-3 once", c)
			break
		}
	}
}
