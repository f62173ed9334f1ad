package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools/counting"
)

const tasksExt = "io.modelcontextprotocol/tasks"

// statelessRPC posts one 2026-07-28 request declaring the tasks extension
// and returns the JSON-RPC result (or error) object.
func statelessRPC(ctx context.Context, endpoint, method, name string, params map[string]any) (map[string]any, map[string]any, error) {
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "tasks-test", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": map[string]any{"extensions": map[string]any{tasksExt: map[string]any{}}},
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	req.Header.Set("Mcp-Name", name)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	var msg struct {
		Result map[string]any `json:"result"`
		Error  map[string]any `json:"error"`
	}
	if err := json.Unmarshal(raw, &msg); err != nil {
		return nil, nil, fmt.Errorf("HTTP %d %q: %w", resp.StatusCode, raw, err)
	}
	return msg.Result, msg.Error, nil
}

// TestTaskSurvivesProcessorKill: a task lives in the toolcalls table, not in
// any process. The processor owning the task's partition is killed with
// SIGKILL while the task runs; the client keeps polling tasks/get through
// the other gateway, and sees the task complete, with its result, once,
// the tool having run once.
func TestTaskSurvivesProcessorKill(t *testing.T) {
	root := conformanceModuleRoot(t)
	bin := conformanceBuildBinary(t, root)
	logPath := t.TempDir() + "/executions.log"

	broker := startProc(t, bin, "broker", "broker", "--broker-port", "0", "--data-dir", t.TempDir())
	brokers := broker.await(t, brokersRE, 60*time.Second)
	procs := map[string]*proc{}
	for _, id := range []string{"p1", "p2"} {
		p := startProc(t, bin, id, "processor", "--brokers", brokers, "--instance-id", id, "--with-executor=false", "--counting-tool-log", logPath)
		p.await(t, opsRE, 90*time.Second)
		procs[id] = p
	}
	ex := startProc(t, bin, "e1", "executor", "--brokers", brokers, "--instance-id", "e1", "--counting-tool-log", logPath)
	ex.await(t, opsRE, 90*time.Second)
	var gw []string
	for _, id := range []string{"g1", "g2"} {
		g := startProc(t, bin, id, "gateway", "--brokers", brokers, "--instance-id", id, "--listen", "127.0.0.1:0")
		gw = append(gw, g.await(t, mcpRE, 60*time.Second))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const callID = "task-failover-1"
	var created map[string]any
	// The first call may race the groups' first rebalance; the gateway says
	// so with a retryable error, and the same key makes the retry the same
	// request.
	for attempt := 0; ; attempt++ {
		res, rpcErr, err := statelessRPC(ctx, gw[0], "tools/call", counting.ToolTally, map[string]any{
			"name": counting.ToolTally, "arguments": map[string]any{"call_id": callID, "sleep_ms": 8000},
		})
		if err == nil && rpcErr == nil {
			created = res
			break
		}
		if attempt > 20 {
			t.Fatalf("creating the task: %v %v", err, rpcErr)
		}
		time.Sleep(time.Second)
	}
	if created["resultType"] != "task" || created["status"] != "working" {
		t.Fatalf("tools/call answered %v, want a working task", created)
	}
	taskID, _ := created["taskId"].(string)

	// Kill the processor that owns the task's toolcalls partition.
	owner := toolcallsOwner(t, ctx, brokers, taskID)
	t.Logf("task %s is in partition %d, owned by %s: SIGKILL", taskID, streams.PartitionFor(taskID, 12), owner)
	procs[owner].signal(syscall.SIGKILL)
	<-procs[owner].done
	killed := time.Now()

	var final map[string]any
	polls, failedPolls := 0, 0
	for final == nil {
		if ctx.Err() != nil {
			t.Fatalf("task not completed after %d polls", polls)
		}
		polls++
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		res, rpcErr, err := statelessRPC(pctx, gw[1], "tasks/get", taskID, map[string]any{"taskId": taskID})
		pcancel()
		switch {
		case err != nil || rpcErr != nil:
			// While the partition moves (the group notices the kill after
			// its session timeout), a poll may time out.
			failedPolls++
		case res["status"] == "completed":
			final = res
		case res["status"] != "working":
			t.Fatalf("task went %v: %v", res["status"], res)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("completed %v after the kill; %d polls, %d failed during the takeover", time.Since(killed).Round(time.Millisecond), polls, failedPolls)
	result, _ := final["result"].(map[string]any)
	content, _ := result["content"].([]any)
	if len(content) != 1 || !strings.Contains(fmt.Sprint(content[0]), counting.ResultText(callID)) {
		t.Fatalf("completed task result %v, want %q", result, counting.ResultText(callID))
	}
	// Polled again through the first gateway: the same, final answer.
	again, rpcErr, err := statelessRPC(ctx, gw[0], "tasks/get", taskID, map[string]any{"taskId": taskID})
	if err != nil || rpcErr != nil || again["status"] != "completed" || again["lastUpdatedAt"] != final["lastUpdatedAt"] {
		t.Fatalf("second poll: %v %v %v, want the same completed task", again, rpcErr, err)
	}
	counts, err := counting.ReadCounts(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if counts[callID] != 1 || len(counts) != 1 {
		t.Fatalf("executions %v, want %s exactly once", counts, callID)
	}
}

// toolcallsOwner names the processor instance whose toolcalls group member
// holds the partition of key.
func toolcallsOwner(t *testing.T, ctx context.Context, brokers, key string) string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics := streams.Topics{}
	part := streams.PartitionFor(key, 12)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		groups, err := adm.DescribeGroups(ctx, topics.ToolCallsGroup())
		if err == nil {
			for _, g := range groups {
				for _, m := range g.Members {
					ca, ok := m.Assigned.AsConsumer()
					if !ok {
						continue
					}
					for _, tp := range ca.Topics {
						if tp.Topic != topics.ToolCalls() {
							continue
						}
						for _, p := range tp.Partitions {
							if p == part {
								return strings.TrimPrefix(m.ClientID, "toolcalls-")
							}
						}
					}
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no toolcalls member owns partition %d", part)
	return ""
}

// TestSessionTasks drives the 2025-11-25 tasks utility over a session:
// task-augmented tools/call, tasks/get, the blocking tasks/result with its
// related-task _meta, tasks/cancel (cancelled before the answer; -32602 on
// a finished task), and the -32601 refusals of task support.
func TestSessionTasks(t *testing.T) {
	b := startBroker(t, "")
	r := allInOne(t, b, "p1", newCounter())
	url := r.ready.MCPURL
	sid := initSession(t, url)
	rpc := func(id int, method string, params string) (map[string]any, map[string]any) {
		t.Helper()
		resp, body := rawPost(t, url, sid, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: HTTP %d %s", method, resp.StatusCode, body)
		}
		var msg struct {
			Result map[string]any `json:"result"`
			Error  map[string]any `json:"error"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatalf("%s: %v in %s", method, err, body)
		}
		return msg.Result, msg.Error
	}

	res, rpcErr := rpc(1, "tools/call", `{"name":"slow_compute","arguments":{"seconds":1,"label":"s1"},"task":{"ttl":60000}}`)
	task, _ := res["task"].(map[string]any)
	if rpcErr != nil || task == nil || task["status"] != "working" || task["ttl"] != float64(60000) || task["pollInterval"] == nil {
		t.Fatalf("task-augmented call: %v %v", res, rpcErr)
	}
	id := task["taskId"].(string)
	if got, _ := rpc(2, "tasks/get", fmt.Sprintf(`{"taskId":%q}`, id)); got["status"] != "working" || got["taskId"] != id {
		t.Fatalf("tasks/get while running: %v", got)
	}
	start := time.Now()
	final, rpcErr := rpc(3, "tasks/result", fmt.Sprintf(`{"taskId":%q}`, id))
	meta, _ := final["_meta"].(map[string]any)
	related, _ := meta["io.modelcontextprotocol/related-task"].(map[string]any)
	if rpcErr != nil || related["taskId"] != id || !strings.Contains(fmt.Sprint(final["content"]), "computed s1") {
		t.Fatalf("tasks/result: %v %v", final, rpcErr)
	}
	t.Logf("tasks/result blocked %v until the task ended", time.Since(start).Round(time.Millisecond))
	if got, _ := rpc(4, "tasks/get", fmt.Sprintf(`{"taskId":%q}`, id)); got["status"] != "completed" {
		t.Fatalf("tasks/get after the end: %v", got)
	}
	if _, e := rpc(5, "tasks/cancel", fmt.Sprintf(`{"taskId":%q}`, id)); e == nil || e["code"] != float64(-32602) {
		t.Fatalf("cancel of a finished task: %v, want -32602", e)
	}

	res, _ = rpc(6, "tools/call", `{"name":"slow_compute","arguments":{"seconds":60},"task":{}}`)
	long := res["task"].(map[string]any)["taskId"].(string)
	cancelled, e := rpc(7, "tasks/cancel", fmt.Sprintf(`{"taskId":%q}`, long))
	if e != nil || cancelled["status"] != "cancelled" {
		t.Fatalf("tasks/cancel: %v %v, want the task, cancelled", cancelled, e)
	}
	if got, _ := rpc(8, "tasks/get", fmt.Sprintf(`{"taskId":%q}`, long)); got["status"] != "cancelled" {
		t.Fatalf("tasks/get after cancel: %v", got)
	}

	if _, e := rpc(9, "tools/call", `{"name":"failing_job","arguments":{}}`); e == nil || e["code"] != float64(-32601) {
		t.Fatalf("plain call of a task-required tool: %v, want -32601", e)
	}
	if _, e := rpc(10, "tools/call", `{"name":"greet","arguments":{"name":"x"},"task":{}}`); e == nil || e["code"] != float64(-32601) {
		t.Fatalf("task call of a tool without task support: %v, want -32601", e)
	}
	// Another session cannot see the task.
	other := initSession(t, url)
	resp, body := rawPost(t, url, other, fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":%q}}`, id))
	if resp.StatusCode != 200 || !strings.Contains(string(body), "-32602") {
		t.Fatalf("tasks/get from another session: %d %s", resp.StatusCode, body)
	}
}
