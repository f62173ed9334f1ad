package upstream

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// Why taps: the go-sdk client hands a response to the waiting call in its
// read loop, but queues notifications for a separate handler goroutine. A
// progress notification sent just before the result can therefore reach a
// ClientOptions handler after CallTool has returned, i.e. after we would
// have handed the result to the executor: the client would see a progress
// notification after the response, or never. A tap sits in front of the SDK
// on the byte stream (stdout of a process, the body of an SSE response),
// sees every message in wire order and routes notifications synchronously,
// before the SDK can even decode the response that follows them. The bytes
// pass through unchanged; the SDK still does all the protocol work.

// maxTapLine bounds what a tap buffers for one message. Notifications worth
// forwarding are small; a larger message (a big tool result) is passed
// through without being inspected.
const maxTapLine = 1 << 20

// lineTap splits a byte stream into lines as it passes and hands each
// complete line to fn.
type lineTap struct {
	fn   func(line []byte)
	buf  []byte
	skip bool // the current line outgrew maxTapLine: ignore until '\n'
}

func (t *lineTap) feed(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.add(p)
			return
		}
		t.add(p[:i])
		if !t.skip {
			t.fn(bytes.TrimSuffix(t.buf, []byte{'\r'}))
		}
		t.buf, t.skip = t.buf[:0], false
		p = p[i+1:]
	}
}

func (t *lineTap) add(p []byte) {
	if t.skip {
		return
	}
	if len(t.buf)+len(p) > maxTapLine {
		t.buf, t.skip = t.buf[:0], true
		return
	}
	t.buf = append(t.buf, p...)
}

// tapReader is stdout of a stdio upstream: newline-delimited JSON-RPC.
type tapReader struct {
	r   io.ReadCloser
	tap lineTap
}

func newTapReader(r io.ReadCloser, onMessage func([]byte)) *tapReader {
	return &tapReader{r: r, tap: lineTap{fn: onMessage}}
}

func (t *tapReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.tap.feed(p[:n])
	}
	return n, err
}

func (t *tapReader) Close() error { return t.r.Close() }

// sseTap reassembles server-sent events from lines and hands each event's
// data (the JSON-RPC message) to fn.
type sseTap struct {
	lines lineTap
	data  []byte
	has   bool
	skip  bool // this event's data outgrew maxTapLine
	fn    func([]byte)
}

func newSSETap(fn func([]byte)) *sseTap {
	t := &sseTap{fn: fn}
	t.lines.fn = t.line
	return t
}

func (t *sseTap) line(l []byte) {
	if len(l) == 0 { // end of event
		if t.has && !t.skip && len(t.data) > 0 {
			t.fn(t.data)
		}
		t.data, t.has, t.skip = t.data[:0], false, false
		return
	}
	v, ok := bytes.CutPrefix(l, []byte("data:"))
	if !ok || t.skip {
		return // id:, event:, retry:, comments
	}
	v = bytes.TrimPrefix(v, []byte(" "))
	if t.has {
		t.data = append(t.data, '\n')
	}
	if len(t.data)+len(v) > maxTapLine {
		t.data, t.skip = t.data[:0], true
		return
	}
	t.data = append(t.data, v...)
	t.has = true
}

type sseTapBody struct {
	rc  io.ReadCloser
	tap *sseTap
}

func (b *sseTapBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.tap.lines.feed(p[:n])
	}
	return n, err
}

func (b *sseTapBody) Close() error { return b.rc.Close() }

// tapTransport adds the configured headers to every request and taps SSE
// response bodies. One per upstream session, so the tap knows whose
// notifications it sees; the base transport (and its connection pool) is
// shared by the provider.
type tapTransport struct {
	base      http.RoundTripper
	headers   map[string]string
	onMessage func([]byte)
	// onConnError, if set, hears of every failure below HTTP: a request
	// that got no response, or a response body that broke off. Why: the
	// go-sdk reports those and a refusal by the server alike (and not
	// always with the cause wrapped), while only the former says the
	// connection, not the upstream, may be at fault (see Provider.dial).
	onConnError func(error)
}

func (t *tapTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if len(t.headers) > 0 {
		// A RoundTripper must not modify the caller's request.
		req = req.Clone(req.Context())
		for k, v := range t.headers {
			req.Header.Set(k, v)
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		t.connError(req, err)
		return nil, err
	}
	// Only SSE bodies can carry notifications; a JSON body is one response.
	if strings.HasPrefix(strings.ToLower(resp.Header.Get("Content-Type")), "text/event-stream") {
		resp.Body = &sseTapBody{rc: resp.Body, tap: newSSETap(t.onMessage)}
	}
	if t.onConnError != nil {
		resp.Body = &watchedBody{rc: resp.Body, req: req, t: t}
	}
	return resp, nil
}

// connError reports err unless the request was cancelled by its caller:
// that is our own doing, not the connection's.
func (t *tapTransport) connError(req *http.Request, err error) {
	if t.onConnError != nil && req.Context().Err() == nil {
		t.onConnError(err)
	}
}

// watchedBody reports a response body that ends in anything but io.EOF,
// unless we closed it ourselves.
type watchedBody struct {
	rc     io.ReadCloser
	req    *http.Request
	t      *tapTransport
	closed atomic.Bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF && !b.closed.Load() {
		b.t.connError(b.req, err)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.closed.Store(true)
	return b.rc.Close()
}
