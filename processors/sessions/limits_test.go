package sessions_test

import (
	"strings"
	"testing"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors/sessions"
	"github.com/mcpstream/mcpstream/schemas"
)

// A client description too large for its tool jobs is refused at
// initialize: accepted, it would make jobs the log cannot hold and stop the
// processor on every replay.
func TestInitializeRefusesOversizedCapabilities(t *testing.T) {
	pad := strings.Repeat("c", sessions.MaxClientDescriptionBytes)
	out := sessions.Handle(testEnv(), nil, req("initialize",
		`{"protocolVersion":"2025-11-25","capabilities":{"experimental":{"pad":"`+pad+`"}},"clientInfo":{"name":"x","version":"1"}}`), 1, now)
	if out.State != nil || out.Reply == nil || out.Reply.HTTPStatus != 400 {
		t.Fatalf("outcome %+v, want a 400 reply and no session", out)
	}
	if b := decodeBody(t, out.Reply.Message); b.Error == nil || b.Error.Code != jsonrpc.CodeInvalidParams {
		t.Fatalf("reply %s, want -32602", out.Reply.Message)
	}
}

func TestProgressTokenMustBeStringOrInteger(t *testing.T) {
	st := session(schemas.SessionActive)
	for _, tc := range []struct {
		token string
		ok    bool
	}{
		{`"abc"`, true}, {`42`, true}, {`{"a":1}`, false}, {`[1]`, false}, {`1.5`, false}, {`true`, false},
	} {
		out := sessions.Handle(testEnv(), st, req("tools/call", `{"name":"echo","_meta":{"progressToken":`+tc.token+`}}`), 10, now)
		if tc.ok != (out.Forward != nil) {
			t.Errorf("progressToken %s: forward=%v, want %v (reply %+v)", tc.token, out.Forward != nil, tc.ok, out.Reply)
		}
		if !tc.ok {
			if b := decodeBody(t, out.Reply.Message); b.Error == nil || b.Error.Code != jsonrpc.CodeInvalidParams {
				t.Errorf("progressToken %s: reply %s, want -32602", tc.token, out.Reply.Message)
			}
		}
	}
}
