package streams

import "testing"

func TestClientRequestIDRoundTrip(t *testing.T) {
	for _, exec := range []string{"host-42", "a/b/c", "x"} {
		id := ClientRequestID(exec, "0123456789ab", 7)
		got, ok := ParseClientRequestID(id)
		if !ok || got != (ClientRequestTarget{Executor: exec, Incarnation: "0123456789ab", Seq: 7}) {
			t.Fatalf("ParseClientRequestID(%q) = %+v, %v", id, got, ok)
		}
		if !IsClientRequestID(id) {
			t.Fatalf("IsClientRequestID(%q) = false", id)
		}
	}
	for _, bad := range []string{"", "1", "mcpstream/", "mcpstream/x", "mcpstream/x/1", "mcpstream//i/1",
		"mcpstream/x//1", "mcpstream/x/i/", "mcpstream/x/i/-1", "mcpstream/x/i/1a", "other/x/i/1"} {
		if got, ok := ParseClientRequestID(bad); ok {
			t.Errorf("ParseClientRequestID(%q) accepted: %+v", bad, got)
		}
	}
}

func TestKeyedRetryEventIDIsANewRequest(t *testing.T) {
	first := KeyedEventID("p", "k")
	r1 := KeyedRetryEventID("p", "k", []byte(`{"a":1}`))
	r2 := KeyedRetryEventID("p", "k", []byte(`{"a":2}`))
	if r1 == first || r2 == first || r1 == r2 {
		t.Fatalf("rounds share an identity: first %s, r1 %s, r2 %s", first, r1, r2)
	}
	if again := KeyedRetryEventID("p", "k", []byte(`{"a":1}`)); again != r1 {
		t.Fatalf("a repeated round got a new identity: %s != %s", again, r1)
	}
	if other := KeyedRetryEventID("q", "k", []byte(`{"a":1}`)); other == r1 {
		t.Fatal("another principal's round shares the identity")
	}
}
