package schemas

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/fingerprints.txt")

// An id names one schema text forever: changing an .avsc file without giving
// it a new id would make old records undecodable or, worse, misread.
func TestSchemaIDsPinned(t *testing.T) {
	r, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, s := range r.Schemas() {
		text, err := files.ReadFile(s.File)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(text)
		fmt.Fprintf(&b, "%d %s %s\n", s.ID, s.File, hex.EncodeToString(sum[:8]))
	}
	if *update {
		if err := os.WriteFile("testdata/fingerprints.txt", []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open("testdata/fingerprints.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		want.WriteString(sc.Text() + "\n")
	}
	if got := b.String(); got != want.String() {
		t.Fatalf("schema fingerprints changed; give changed schemas new ids (then -update):\ngot:\n%swant:\n%s", got, want.String())
	}
}

func TestRoundTrip(t *testing.T) {
	r := MustLoad()
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	req := &RequestEvent{EventID: "e1", Kind: KindRequest, SessionID: "s", Principal: "p", ProtocolVersion: "2025-11-25",
		Method: "tools/call", RPCID: []byte(`"x"`), Params: []byte(`{"name":"a"}`), ReplyGateway: "g", ReplyToken: "t", ReceivedAt: now}
	b, err := r.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0 || b[4] != 1 {
		t.Fatalf("frame prefix = % x, want 00 00 00 00 01", b[:5])
	}
	got, err := r.DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	got.ReceivedAt = got.ReceivedAt.UTC()
	if !reflect.DeepEqual(got, req) {
		t.Fatalf("request round trip:\n got %+v\nwant %+v", got, req)
	}

	notif := &RequestEvent{EventID: "e2", Kind: KindNotification, ReceivedAt: now}
	b, _ = r.EncodeRequest(notif)
	got, err = r.DecodeRequest(b)
	if err != nil || got.RPCID != nil || got.Params != nil {
		t.Fatalf("nullable fields: %+v %v", got, err)
	}

	tc := &ToolCallState{EventID: "e", Tool: "t", Status: CallCompleted, Response: []byte(`{"result":{}}`),
		Waiters: []Waiter{{"g1", "t1"}, {"g2", "t2"}}, Duplicates: 2, AcceptedAt: now, CompletedAt: now}
	b, _ = r.EncodeToolCall(tc)
	gtc, err := r.DecodeToolCall(b)
	if err != nil {
		t.Fatal(err)
	}
	gtc.AcceptedAt, gtc.CompletedAt = gtc.AcceptedAt.UTC(), gtc.CompletedAt.UTC()
	if !reflect.DeepEqual(gtc, tc) {
		t.Fatalf("toolcall round trip:\n got %+v\nwant %+v", gtc, tc)
	}
}

func TestDecodeRejects(t *testing.T) {
	r := MustLoad()
	if _, err := r.DecodeRequest([]byte(`{"json":true}`)); !errors.Is(err, ErrNotFramed) {
		t.Fatalf("unframed: %v", err)
	}
	if _, err := r.DecodeRequest([]byte{0, 0, 0, 0, 99, 1}); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("unknown id: %v", err)
	}
	b, _ := r.EncodeReply(&ReplyEvent{Gateway: "g", Kind: ReplyAccepted})
	if _, err := r.DecodeRequest(b); err == nil {
		t.Fatal("a reply decoded as a request")
	}
	if _, err := r.DecodeReply(b[:len(b)-1]); err == nil {
		t.Fatal("truncated value decoded")
	}
}

func FuzzDecodeRequest(f *testing.F) {
	r := MustLoad()
	b, _ := r.EncodeRequest(&RequestEvent{EventID: "e", Kind: KindRequest})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = r.DecodeRequest(data) // must not panic
	})
}
