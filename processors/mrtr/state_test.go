package mrtr

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/tools"
)

func TestStateRoundTrip(t *testing.T) {
	s := NewSigner([]byte("k"))
	o := Origin{Principal: "anonymous", Method: "tools/call", Name: "t", Arguments: json.RawMessage(`{"b":2,"a":1}`)}
	ans := map[string]json.RawMessage{"step1": json.RawMessage(`{"action":"accept","content":{"name":"Alice"}}`)}
	st, err := s.Seal(o, 2, ans)
	if err != nil {
		t.Fatal(err)
	}
	// The same arguments re-serialised (other key order, spaces) match.
	o2 := o
	o2.Arguments = json.RawMessage(`{ "a": 1, "b": 2 }`)
	round, got, err := s.Open(o2, st)
	if err != nil || round != 2 || string(got["step1"]) != string(ans["step1"]) {
		t.Fatalf("Open = %d, %v, %v", round, got, err)
	}
	// Another deployment key, principal, tool, arguments, or a tampered
	// value: all refused.
	other := o
	other.Principal = "bearer:x"
	args := o
	args.Arguments = json.RawMessage(`{"a":2}`)
	name := o
	name.Name = "u"
	cases := map[string]struct {
		s  *Signer
		o  Origin
		st string
	}{
		"tampered":  {s, o, st + "-TAMPERED"},
		"body":      {s, o, "x" + st[1:]},
		"no dot":    {s, o, strings.ReplaceAll(st, ".", "")},
		"empty":     {s, o, ""},
		"key":       {NewSigner([]byte("other")), o, st},
		"principal": {s, other, st},
		"arguments": {s, args, st},
		"tool":      {s, name, st},
		"expired":   {s.WithClock(func() time.Time { return time.Now().Add(DefaultTTL + time.Minute) }), o, st},
	}
	for n, c := range cases {
		if _, _, err := c.s.Open(c.o, c.st); !errors.Is(err, ErrBadState) {
			t.Errorf("%s: Open err = %v, want ErrBadState", n, err)
		}
	}
	// A cursor key configured or not, the derived keys agree between
	// instances: two signers from one key accept each other's states.
	if _, _, err := NewSigner([]byte("k")).Open(o, st); err != nil {
		t.Fatalf("second signer with the same key: %v", err)
	}
}

func TestParseRetry(t *testing.T) {
	r, err := ParseRetry([]byte(`{"name":"t","inputResponses":{"a":{"action":"accept"}, "b":{}},"requestState":"s"}`))
	if err != nil || !r.Present() || r.State != "s" || len(r.Responses) != 2 || string(r.RawResponses) != `{"a":{"action":"accept"},"b":{}}` {
		t.Fatalf("ParseRetry = %+v, %v", r, err)
	}
	if r, err := ParseRetry([]byte(`{"name":"t"}`)); err != nil || r.Present() {
		t.Fatalf("no retry: %+v, %v", r, err)
	}
	for _, bad := range []string{
		`{"inputResponses":null}`, `{"inputResponses":[]}`, `{"inputResponses":"x"}`,
		`{"inputResponses":{"user_name":12345}}`, `{"inputResponses":{"a":null}}`, `{"requestState":7}`,
	} {
		if _, err := ParseRetry([]byte(bad)); err == nil {
			t.Errorf("ParseRetry(%s) accepted", bad)
		}
	}
}

func TestRoundIdentity(t *testing.T) {
	if RoundIdentity([]byte(`{"name":"t","arguments":{}}`)) != nil {
		t.Fatal("a first round has a round identity")
	}
	a := RoundIdentity([]byte(`{"inputResponses":{"x":{"action":"accept"}},"requestState":"s"}`))
	b := RoundIdentity([]byte(`{"requestState":"s", "inputResponses":{ "x" : {"action":"accept"}}}`))
	c := RoundIdentity([]byte(`{"inputResponses":{"x":{"action":"decline"}},"requestState":"s"}`))
	if string(a) != string(b) || string(a) == string(c) {
		t.Fatalf("round identities: a %q b %q c %q", a, b, c)
	}
}

func TestInputRequiredResult(t *testing.T) {
	r := InputRequired([]tools.InputRequest{{Key: "roots", Method: tools.MethodListRoots},
		{Key: "q", Method: tools.MethodCreateMessage, Params: map[string]any{"maxTokens": 1}}}, "st")
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"inputRequests":{"q":{"method":"sampling/createMessage","params":{"maxTokens":1}},"roots":{"method":"roots/list","params":{}}},"requestState":"st","resultType":"input_required"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}
