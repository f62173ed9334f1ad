package schemas

import (
	"encoding/binary"
	"reflect"
	"testing"
	"time"
)

func TestControlRecordsRoundTrip(t *testing.T) {
	r := MustLoad()
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	c := &ToolControl{EventID: "e1", Kind: ControlClaim, Executor: "x1", Incarnation: "i1", Idempotent: true, Reason: "r", ProducedAt: now,
		ReplyGateway: "gw", ReplyToken: "tok", Principal: "p", Method: "tasks/get"}
	b, err := r.EncodeControl(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.DecodeControl(b)
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("control: got %+v, %v; want %+v", got, err, c)
	}
	cmd := &ExecutorCommand{Executor: "x1", Incarnation: "i1", EventID: "e1", Kind: CommandConflict, HolderExecutor: "x2", HolderIncarnation: "i2", Attempt: 2, ProducedAt: now, Message: []byte(`{"result":{}}`)}
	if b, err = r.EncodeCommand(cmd); err != nil {
		t.Fatal(err)
	}
	if got, err := r.DecodeCommand(b); err != nil || !reflect.DeepEqual(got, cmd) {
		t.Fatalf("command: got %+v, %v; want %+v", got, err, cmd)
	}
	beat := &ExecutorBeat{Executor: "x1", Incarnation: "i1", BeatAt: now, Inflight: []string{"a", "b"}, Stopped: true}
	if b, err = r.EncodeBeat(beat); err != nil {
		t.Fatal(err)
	}
	if got, err := r.DecodeBeat(b); err != nil || !reflect.DeepEqual(got, beat) {
		t.Fatalf("beat: got %+v, %v; want %+v", got, err, beat)
	}
	// A control value is not a result: decoding with the wrong type fails.
	if _, err := r.DecodeResult(b); err == nil {
		t.Fatal("DecodeResult accepted an executor beat")
	}
}

// Tool-call tables written before claims existed must stay readable: a
// processor upgraded in place recovers its table from the old values.
func TestToolCallStateV1StillDecodes(t *testing.T) {
	r := MustLoad()
	old := r.byID[4]
	if old == nil || old.File != "toolcall_state.v1.avsc" {
		t.Fatalf("schema 4 is %+v, want toolcall_state.v1.avsc", old)
	}
	buf := make([]byte, 5)
	binary.BigEndian.PutUint32(buf[1:], 4)
	buf, err := old.Codec.BinaryFromNative(buf, map[string]any{
		"event_id": "e", "session_id": "s", "principal": "p", "tool": "t", "status": "COMPLETED",
		"response": map[string]any{"bytes": []byte(`{"result":{}}`)}, "waiters": []any{},
		"duplicates": int32(1), "call_offset": int64(7), "accepted_at": time.UnixMilli(1000), "completed_at": time.UnixMilli(2000),
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.DecodeToolCall(buf)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != CallCompleted || st.CallOffset != 7 || string(st.Response) != `{"result":{}}` || st.ClaimExecutor != "" || st.Job != nil {
		t.Fatalf("decoded v1 state wrong: %+v", st)
	}
	// New values are written with the current schema.
	b, err := r.EncodeToolCall(st)
	if err != nil {
		t.Fatal(err)
	}
	if id := binary.BigEndian.Uint32(b[1:5]); id != 10 {
		t.Fatalf("EncodeToolCall wrote schema %d, want 10", id)
	}
}

func TestToolJobV2RoundTripAndV1StillDecodes(t *testing.T) {
	r := MustLoad()
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	j := &ToolJob{EventID: "e", SessionID: "s", Principal: "p", Tool: "t", AcceptedAt: now, Task: true, TaskTTLMs: 60000,
		InputResponses: []byte(`{"a":{}}`), RequestState: "st.sig"}
	b, err := r.EncodeJob(j)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.DecodeJob(b)
	if err != nil || !reflect.DeepEqual(got, j) {
		t.Fatalf("job: got %+v, %v; want %+v", got, err, j)
	}
	old := r.byID[5]
	buf := make([]byte, 5)
	binary.BigEndian.PutUint32(buf[1:], 5)
	buf, err = old.Codec.BinaryFromNative(buf, map[string]any{"event_id": "e", "session_id": "s", "principal": "p", "tool": "t",
		"arguments": nil, "progress_token": nil, "reply_gateway": "g", "reply_token": "k", "client_capabilities": nil,
		"log_level": "", "accepted_at": now})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := r.DecodeJob(buf)
	if err != nil || v1.ReplyGateway != "g" || v1.Task || v1.RequestState != "" {
		t.Fatalf("v1 job decoded as %+v, %v", v1, err)
	}
}

// Commands written before CLIENT_RESPONSE carried its sender stay readable,
// and new ones carry who posted the response and where to acknowledge it.
func TestExecutorCommandV1StillDecodes(t *testing.T) {
	r := MustLoad()
	old := r.byID[8]
	if old == nil || old.File != "executor_command.v1.avsc" {
		t.Fatalf("schema 8 is %+v, want executor_command.v1.avsc", old)
	}
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	buf := make([]byte, 5)
	binary.BigEndian.PutUint32(buf[1:], 8)
	buf, err := old.Codec.BinaryFromNative(buf, map[string]any{
		"executor": "x1", "incarnation": "i1", "event_id": "e1", "kind": "GRANT", "produced_at": now,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := r.DecodeCommand(buf)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Kind != CommandGrant || cmd.Executor != "x1" || cmd.EventID != "e1" || cmd.SessionID != "" || cmd.ReplyGateway != "" {
		t.Fatalf("decoded v1 command wrong: %+v", cmd)
	}
	resp := &ExecutorCommand{Executor: "x1", Incarnation: "i1", Kind: CommandClientResponse, ProducedAt: now,
		Message: []byte(`{"jsonrpc":"2.0","id":"mcpstream/x1/i1/1","result":{}}`), SessionID: "s1", Principal: "anonymous",
		ReplyGateway: "gw-1", ReplyToken: "tok"}
	b, err := r.EncodeCommand(resp)
	if err != nil {
		t.Fatal(err)
	}
	if id := binary.BigEndian.Uint32(b[1:5]); id != 12 {
		t.Fatalf("EncodeCommand wrote schema %d, want 12", id)
	}
	if got, err := r.DecodeCommand(b); err != nil || !reflect.DeepEqual(got, resp) {
		t.Fatalf("client response: got %+v, %v; want %+v", got, err, resp)
	}
}
