package gateway

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestEventIDRoundTrip(t *testing.T) {
	for _, p := range []streamPos{
		{Gateway: "gw-a", Token: "0123456789abcdef0123456789abcdef", Offset: 42, RPCID: json.RawMessage(`"x"`)},
		{Gateway: "gw-b", Token: "0123456789abcdef0123456789abcdef", Offset: -1, RPCID: json.RawMessage(`7`)},
	} {
		got, err := parseEventID(p.eventID())
		if err != nil {
			t.Fatalf("parse(%+v): %v", p, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("round trip %+v -> %+v", p, got)
		}
	}
	good := streamPos{Gateway: "g", Token: "0123456789abcdef0123456789abcdef", Offset: 1, RPCID: json.RawMessage(`1`)}.eventID()
	for _, bad := range []string{"", "!!", "bm90IGFuIGlk", good[:len(good)-3],
		streamPos{Gateway: "g", Token: "short", Offset: 1}.eventID(),
		streamPos{Gateway: "g", Token: "0123456789abcdef0123456789abcdef", Offset: -5}.eventID(),
		streamPos{Gateway: "g", Token: "0123456789abcdef0123456789abcdef", Offset: 1, RPCID: json.RawMessage(`{}`)}.eventID(),
	} {
		if _, err := parseEventID(bad); err == nil {
			t.Errorf("parseEventID(%q) accepted", bad)
		}
	}
}
