package jsonrpc

import (
	"encoding/json"
	"testing"
)

func TestCompose(t *testing.T) {
	body, err := ResultBody(map[string]int{"a": 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		body []byte
		want string
	}{
		{`7`, body, `{"jsonrpc":"2.0","id":7,"result":{"a":1}}`},
		{`"x"`, ErrorBody(Errorf(CodeInvalidParams, "bad")), `{"jsonrpc":"2.0","id":"x","error":{"code":-32602,"message":"bad"}}`},
		{``, ErrorBody(Errorf(CodeParseError, "p")), `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"p"}}`},
	} {
		got := string(Compose(json.RawMessage(tc.id), tc.body))
		if got != tc.want {
			t.Errorf("Compose(%s) = %s, want %s", tc.id, got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("invalid JSON %s", got)
		}
	}
	if code, ok := IsError(ErrorBody(Errorf(-32601, "m"))); !ok || code != -32601 {
		t.Fatalf("IsError = %d %v", code, ok)
	}
	if _, ok := IsError(body); ok {
		t.Fatal("result reported as error")
	}
}
