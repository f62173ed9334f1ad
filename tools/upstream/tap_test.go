package upstream

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// chunked feeds data in random-sized pieces, so messages straddle reads.
func chunked(seed uint64, data []byte, feed func([]byte)) {
	r := rand.New(rand.NewPCG(seed, 1))
	for len(data) > 0 {
		n := min(1+r.IntN(7), len(data))
		feed(data[:n])
		data = data[n:]
	}
}

func TestSSETap(t *testing.T) {
	stream := "id: 1\ndata: \n\n" + // priming event, empty data
		"event: message\r\nid: 2\r\ndata: {\"method\":\"notifications/progress\"}\r\n\r\n" +
		": comment\ndata: {\"a\":\ndata: 1}\n\n" + // multi-line data
		"data: {\"result\":{}}\n\n"
	want := []string{`{"method":"notifications/progress"}`, "{\"a\":\n1}", `{"result":{}}`}
	for seed := range uint64(20) {
		var got []string
		tap := newSSETap(func(b []byte) { got = append(got, string(b)) })
		chunked(seed, []byte(stream), tap.lines.feed)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("seed %d: got %q, want %q", seed, got, want)
		}
	}
}

func TestTapReaderPassesBytesThrough(t *testing.T) {
	big := strings.Repeat("x", maxTapLine+10)
	stream := "{\"n\":1}\r\n{\"big\":\"" + big + "\"}\n{\"n\":2}\n{\"partial\""
	var got []string
	r := newTapReader(io.NopCloser(strings.NewReader(stream)), func(b []byte) { got = append(got, string(b)) })
	out, err := io.ReadAll(io.LimitReader(r, int64(len(stream))))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, []byte(stream)) {
		t.Fatal("the tap changed the bytes")
	}
	// The oversized line is skipped, the unterminated one not yet seen.
	if strings.Join(got, "|") != `{"n":1}|{"n":2}` {
		t.Fatalf("lines: %q", got)
	}
}
