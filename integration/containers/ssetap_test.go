//go:build containers

package containers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// sseTap is an http.RoundTripper between the go-sdk client and the fail-over
// balancer that reads every SSE stream as the client reads it: what was
// delivered on the wire, not what the SDK made of it. It counts JSON-RPC
// responses per (session, id), progress values per progress token in
// arrival order, priming events of POST streams, and every resumption (a
// GET with Last-Event-ID) with the gateway that answered it.
type sseTap struct {
	base http.RoundTripper

	mu        sync.Mutex
	responses map[string]int       // "<session>/<JSON-RPC id>" -> responses delivered
	progress  map[string][]float64 // progress token -> values, in arrival order
	primed    map[string]time.Time // session -> last priming event on a POST stream
	resumes   []*resumeRec
}

// resumeRec is one GET with Last-Event-ID.
type resumeRec struct {
	session    string
	host       string // the gateway that answered (after fail-over)
	status     int
	sent       time.Time
	opened     time.Time // response headers received
	firstEvent time.Time // first event with data
	events     int       // events with data
	final      bool      // the stream delivered a JSON-RPC response
}

func newSSETap(base http.RoundTripper) *sseTap {
	return &sseTap{base: base, responses: map[string]int{}, progress: map[string][]float64{}, primed: map[string]time.Time{}}
}

func (t *sseTap) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	sid := req.Header.Get("Mcp-Session-Id")
	var rr *resumeRec
	// A Last-Event-ID of a standalone GET stream ("~stream~...") reopens
	// that stream (the client lost it with its gateway); only call streams
	// are resumptions.
	if last := req.Header.Get("Last-Event-ID"); req.Method == http.MethodGet && last != "" && !strings.HasPrefix(last, "~stream~") {
		host := req.URL.Host
		if resp.Request != nil {
			host = resp.Request.URL.Host // the balancer's choice
		}
		rr = &resumeRec{session: sid, host: host, status: resp.StatusCode, sent: sent, opened: time.Now()}
		t.mu.Lock()
		t.resumes = append(t.resumes, rr)
		t.mu.Unlock()
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, nil
	}
	post := req.Method == http.MethodPost
	resp.Body = &tapBody{rc: resp.Body, on: func(id, data string) { t.event(sid, post, rr, id, data) }}
	return resp, nil
}

// event records one SSE event of session sid's stream.
func (t *sseTap) event(sid string, post bool, rr *resumeRec, id, data string) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if data == "" {
		if id != "" && post {
			t.primed[sid] = now
		}
		return
	}
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			ProgressToken any     `json:"progressToken"`
			Progress      float64 `json:"progress"`
		} `json:"params"`
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.responses["undecodable"]++
		return
	}
	response := len(m.ID) > 0 && m.Method == "" && (len(m.Result) > 0 || len(m.Error) > 0)
	switch {
	case m.Method == "notifications/progress":
		tok := fmt.Sprint(m.Params.ProgressToken)
		t.progress[tok] = append(t.progress[tok], m.Params.Progress)
	case response:
		t.responses[sid+"/"+string(m.ID)]++
	}
	if rr != nil {
		if rr.events == 0 {
			rr.firstEvent = now
		}
		rr.events++
		rr.final = rr.final || response
	}
}

// snapshot copies what the tap has seen so far.
func (t *sseTap) snapshot() (responses map[string]int, progress map[string][]float64, primed map[string]time.Time, resumes []resumeRec) {
	t.mu.Lock()
	defer t.mu.Unlock()
	responses, progress, primed = map[string]int{}, map[string][]float64{}, map[string]time.Time{}
	for k, v := range t.responses {
		responses[k] = v
	}
	for k, v := range t.progress {
		progress[k] = append([]float64(nil), v...)
	}
	for k, v := range t.primed {
		primed[k] = v
	}
	for _, r := range t.resumes {
		resumes = append(resumes, *r)
	}
	return responses, progress, primed, resumes
}

// tapBody passes a response body through unchanged and parses the SSE
// events in it as they go by.
type tapBody struct {
	rc   io.ReadCloser
	on   func(id, data string)
	buf  []byte
	id   string
	data []string
	seen bool // a field of the current event was seen
}

func (b *tapBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.feed(p[:n])
	return n, err
}

func (b *tapBody) Close() error { return b.rc.Close() }

func (b *tapBody) feed(p []byte) {
	b.buf = append(b.buf, p...)
	for {
		i := bytes.IndexByte(b.buf, '\n')
		if i < 0 {
			return
		}
		line := strings.TrimSuffix(string(b.buf[:i]), "\r")
		b.buf = b.buf[i+1:]
		b.line(line)
	}
}

func (b *tapBody) line(line string) {
	if line == "" {
		if b.seen {
			b.on(b.id, strings.Join(b.data, "\n"))
		}
		b.id, b.data, b.seen = "", nil, false
		return
	}
	if strings.HasPrefix(line, ":") {
		return // a comment (": resumed")
	}
	field, value, _ := strings.Cut(line, ":")
	value = strings.TrimPrefix(value, " ")
	switch field {
	case "id":
		b.id, b.seen = value, true
	case "data":
		if value != "" {
			b.data = append(b.data, value)
		}
		b.seen = true
	}
}
