package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"

	"github.com/mcpstream/mcpstream/tools"
)

// maxQueuedNotifications bounds the notifications waiting to be forwarded
// for one call. Taps never block (blocking would stall every call of the
// upstream session behind a slow Notifier); past this bound notifications
// are dropped and counted, which is harmless for progress and rare for logs.
const maxQueuedNotifications = 4096

// router routes the notifications of one upstream session to the calls in
// flight on it:
//   - progress by token: every call that wants progress gets a token unique
//     in the session (the client's own token could collide with another
//     client's on a shared session), and the notifier puts the client's
//     token back;
//   - log messages to the oldest call in flight. An upstream's log message
//     names no request, so this is a guess, but it never crosses users: an
//     upstream session serves one downstream session, or (pooled) one
//     stateless call at a time. With no call in flight the message is
//     dropped: mcpstream has no stream to put it on.
type router struct {
	log *slog.Logger

	mu     sync.Mutex
	calls  []*callSink // in start order
	tokens map[string]*callSink
	next   uint64
}

func newRouter(log *slog.Logger) *router {
	return &router{log: log, tokens: make(map[string]*callSink)}
}

// begin registers a call. When wantProgress is set the returned sink has a
// token to send as the upstream call's progressToken.
func (r *router) begin(ctx context.Context, n tools.Notifier, wantProgress bool) *callSink {
	s := &callSink{ctx: ctx, n: n, log: r.log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	r.mu.Lock()
	r.next++
	if wantProgress {
		s.token = "mcpstream-" + strconv.FormatUint(r.next, 10)
		r.tokens[s.token] = s
	}
	r.calls = append(r.calls, s)
	r.mu.Unlock()
	go s.forward()
	return s
}

// end unregisters the call and waits until every notification routed to it
// so far has been handed to its Notifier (or the call's context ended).
// Called after the upstream's response arrived, it guarantees that all
// notifications the upstream sent before the response are forwarded before
// the caller sees the result.
func (r *router) end(s *callSink) {
	r.mu.Lock()
	if s.token != "" {
		delete(r.tokens, s.token)
	}
	for i, c := range r.calls {
		if c == s {
			r.calls = append(r.calls[:i], r.calls[i+1:]...)
			break
		}
	}
	r.mu.Unlock()
	s.close()
	<-s.done
	if s.dropped > 0 {
		r.log.Warn("upstream notifications dropped: too many queued for one call", "dropped", s.dropped)
	}
}

// dispatch is a tap's callback: one JSON-RPC message in wire order.
func (r *router) dispatch(msg []byte) {
	// Cheap filter first: most messages are responses.
	if !bytes.Contains(msg, []byte(`notifications/`)) {
		return
	}
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(msg, &m); err != nil || m.ID != nil {
		return
	}
	switch m.Method {
	case "notifications/progress":
		var p struct {
			Token    json.RawMessage `json:"progressToken"`
			Progress float64         `json:"progress"`
			Total    float64         `json:"total"`
			Message  string          `json:"message"`
		}
		if json.Unmarshal(m.Params, &p) != nil {
			return
		}
		var tok string
		if json.Unmarshal(p.Token, &tok) != nil {
			return // we only ever send string tokens
		}
		r.mu.Lock()
		s := r.tokens[tok]
		r.mu.Unlock()
		if s != nil {
			s.push(event{progress: true, value: p.Progress, total: p.Total, message: p.Message})
		}
	case "notifications/message":
		var p struct {
			Level  string          `json:"level"`
			Logger string          `json:"logger"`
			Data   json.RawMessage `json:"data"`
		}
		if json.Unmarshal(m.Params, &p) != nil || p.Level == "" {
			return
		}
		r.mu.Lock()
		var s *callSink
		if len(r.calls) > 0 {
			s = r.calls[0]
		}
		r.mu.Unlock()
		if s == nil {
			r.log.Debug("upstream log message with no call in flight dropped", "level", p.Level)
			return
		}
		s.push(event{level: p.Level, logger: p.Logger, data: p.Data})
	}
}

type event struct {
	progress bool
	value    float64
	total    float64
	message  string
	level    string
	logger   string
	data     json.RawMessage
}

// callSink queues one call's notifications and forwards them, in order, on
// its own goroutine, so a slow Notifier (a Kafka produce) never blocks the
// tap.
type callSink struct {
	ctx   context.Context
	n     tools.Notifier
	log   *slog.Logger
	token string

	mu      sync.Mutex
	queue   []event
	closed  bool
	dropped int
	wake    chan struct{}
	done    chan struct{}
}

func (s *callSink) push(e event) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= maxQueuedNotifications {
		s.dropped++
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, e)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *callSink) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *callSink) forward() {
	defer close(s.done)
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		closed := s.closed
		s.mu.Unlock()
		for _, e := range batch {
			if s.ctx.Err() != nil {
				// The call is over for the client; its stream is gone.
				break
			}
			var err error
			if e.progress {
				err = s.n.Progress(s.ctx, e.value, e.total, e.message)
			} else {
				err = s.n.Log(s.ctx, e.level, e.logger, e.data)
			}
			if err != nil {
				s.log.Debug("forwarding upstream notification failed", "err", err)
			}
		}
		if closed {
			return
		}
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			s.mu.Lock()
			s.closed = true
			s.queue = nil
			s.mu.Unlock()
			return
		}
	}
}
