package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors/notify"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

// Server-originated notifications (processors/notify). A change reaches
// every gateway once, as a broadcast record in its reply partition; each
// gateway hands it to the streams it holds:
//
//   - 2026-07-28 subscriptions/listen streams, by their filter, tagged with
//     the subscription id;
//   - 2025-11-25 GET streams: list changes directly (one stream per session
//     on this gateway, as the spec wants a message on one stream only);
//     resources/updated only after the sessions processor, asked with a
//     CheckSubscription event keyed by the session, confirmed the session
//     subscribed to the URI (its answer comes back on the stream's token).

// keepAliveEvery is the interval of SSE comments on idle notification
// streams, so proxies do not cut them.
const keepAliveEvery = 15 * time.Second

// subscriptionIDMeta tags every message of a listen stream.
const subscriptionIDMeta = "io.modelcontextprotocol/subscriptionId"

// listenFilter is what a subscriptions/listen stream asked for.
type listenFilter struct {
	ToolsListChanged      bool     `json:"toolsListChanged,omitempty"`
	PromptsListChanged    bool     `json:"promptsListChanged,omitempty"`
	ResourceSubscriptions []string `json:"resourceSubscriptions,omitempty"`
}

// listener is one notification stream held by this gateway.
type listener struct {
	seq       uint64
	session   string // 2025-11-25 GET stream; "" for a listen stream
	principal string // of the GET stream's session
	token     string
	filter    listenFilter
	ch        chan []byte
}

// listenerSet is the gateway's streams, by registration order.
type listenerSet struct {
	mu   sync.Mutex
	next uint64
	all  map[*listener]struct{}
	// stop is closed when the reply loop that feeds the streams ends (the
	// gateway stops): they end instead of holding shutdown up.
	stop chan struct{}
}

// running starts a reply loop's lifetime; the returned func ends it.
func (s *listenerSet) running() func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	stop := make(chan struct{})
	s.stop = stop
	return func() { close(stop) }
}

// stopped is closed when the current reply loop ends.
func (s *listenerSet) stopped() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop == nil {
		s.stop = make(chan struct{})
	}
	return s.stop
}

func (s *listenerSet) add(l *listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.all == nil {
		s.all = map[*listener]struct{}{}
	}
	s.next++
	l.seq = s.next
	s.all[l] = struct{}{}
}

func (s *listenerSet) remove(l *listener) {
	s.mu.Lock()
	delete(s.all, l)
	s.mu.Unlock()
}

// offer hands a message to a stream without blocking the reply loop; a
// stream whose client does not read loses it.
func (l *listener) offer(msg []byte) bool {
	select {
	case l.ch <- msg:
		return true
	default:
		return false
	}
}

// broadcast delivers one change record read from the reply partition.
func (g *Gateway) broadcast(rep *schemas.ReplyEvent) {
	var m struct {
		Method string `json:"method"`
		Params struct {
			URI string `json:"uri"`
		} `json:"params"`
	}
	if json.Unmarshal(rep.Message, &m) != nil || m.Method == "" {
		return
	}
	g.lst.mu.Lock()
	// The oldest local GET stream of each session takes its messages.
	first := map[string]*listener{}
	var listens []*listener
	for l := range g.lst.all {
		if l.session == "" {
			listens = append(listens, l)
			continue
		}
		if f := first[l.session]; f == nil || l.seq < f.seq {
			first[l.session] = l
		}
	}
	g.lst.mu.Unlock()

	for _, l := range listens {
		var want bool
		switch m.Method {
		case notify.ToolsListChanged:
			want = l.filter.ToolsListChanged
		case notify.PromptsListChanged:
			want = l.filter.PromptsListChanged
		case notify.ResourceUpdated:
			for _, u := range l.filter.ResourceSubscriptions {
				want = want || u == m.Params.URI
			}
		}
		if want && !l.offer(rep.Message) {
			g.log.Warn("listen stream not reading; notification dropped", "method", m.Method)
		}
	}
	switch m.Method {
	case notify.ToolsListChanged, notify.PromptsListChanged:
		for _, l := range first {
			if !l.offer(rep.Message) {
				g.log.Warn("GET stream not reading; notification dropped", "method", m.Method, "session", l.session)
			}
		}
	case notify.ResourceUpdated:
		if len(first) == 0 || m.Params.URI == "" {
			return
		}
		// Producing waits for the broker: never in the reply loop.
		go g.checkSubscriptions(first, m.Params.URI)
	}
}

// checkSubscriptions asks the sessions processor, per session with a GET
// stream here, whether it subscribed to uri.
func (g *Gateway) checkSubscriptions(bySession map[string]*listener, uri string) {
	params, _ := json.Marshal(map[string]string{"uri": uri})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for sid, l := range bySession {
		ev := &schemas.RequestEvent{EventID: streams.RandomEventID(), Kind: schemas.KindNotification, Method: notify.CheckSubscription,
			SessionID: sid, Principal: l.principal, Params: params, ReplyGateway: g.cfg.ID, ReplyToken: l.token, ReceivedAt: time.Now()}
		if err := g.produce(ctx, ev, sid); err != nil {
			g.log.Warn("resource update not checked for a session", "session", sid, "uri", uri, "err", err)
		}
	}
}

// serveListen answers 2026-07-28 subscriptions/listen: an SSE stream that
// starts with notifications/subscriptions/acknowledged and then carries the
// notifications the filter asked for, until the client closes it.
func (g *Gateway) serveListen(w http.ResponseWriter, r *http.Request, id json.RawMessage, params json.RawMessage) string {
	var p struct {
		Notifications *listenFilter `json:"notifications"`
	}
	if err := json.Unmarshal(orEmptyJSON(params), &p); err != nil || p.Notifications == nil {
		writeError(w, http.StatusBadRequest, id, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "subscriptions/listen needs params.notifications, an object"))
		return "rejected"
	}
	if !g.Ready() {
		writeNotReady(w, id)
		return "unavailable"
	}
	// resourcesListChanged is not agreed to: nothing publishes it.
	agreed := *p.Notifications
	l := &listener{token: streams.NewID(), filter: agreed, ch: make(chan []byte, 64)}
	g.lst.add(l)
	defer g.lst.remove(l)

	sse := g.startSSE(w, "")
	tag := func(msg []byte) []byte {
		var m map[string]any
		if json.Unmarshal(msg, &m) != nil {
			return msg
		}
		ps, _ := m["params"].(map[string]any)
		if ps == nil {
			ps = map[string]any{}
		}
		meta, _ := ps["_meta"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
		}
		meta[subscriptionIDMeta] = id
		ps["_meta"] = meta
		m["params"] = ps
		out, err := json.Marshal(m)
		if err != nil {
			return msg
		}
		return out
	}
	ack, _ := notify.Message("notifications/subscriptions/acknowledged", map[string]any{"notifications": agreed})
	sse.send("", tag(ack))
	outcome := g.pump(r.Context(), sse, l, nil, tag)
	if outcome == "closed" {
		// The server ends the subscription: a result says it ended
		// gracefully, so the client knows to listen elsewhere.
		meta, _ := json.Marshal(map[string]any{"resultType": "complete", "_meta": map[string]any{subscriptionIDMeta: id}})
		sse.send("", jsonrpc.Compose(id, []byte(`{"result":`+string(meta)+`}`)))
	}
	return outcome
}

// serveStream answers GET without Last-Event-ID in a 2025-11-25 session:
// the session's standalone stream for server notifications.
func (g *Gateway) serveStream(w http.ResponseWriter, r *http.Request) string {
	sid := r.Header.Get(hSessionID)
	if sid == "" || !validSessionID(sid) {
		writeError(w, http.StatusBadRequest, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "GET needs a valid Mcp-Session-Id"))
		return "rejected"
	}
	if sse, _ := accepts(r.Header.Get("Accept")); !sse {
		writeError(w, http.StatusNotAcceptable, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "GET needs Accept: text/event-stream"))
		return "rejected"
	}
	if !g.Ready() {
		writeNotReady(w, nil)
		return "unavailable"
	}
	who := principal(r)
	l := &listener{session: sid, principal: who, token: streams.NewID(), ch: make(chan []byte, 64)}
	wt := g.register(l.token)
	defer g.unregister(l.token)
	// The processor decides whether the session is live and the caller's.
	ev := &schemas.RequestEvent{EventID: streams.RandomEventID(), Kind: schemas.KindNotification, Method: notify.StreamOpened,
		SessionID: sid, Principal: who, ProtocolVersion: r.Header.Get(hProtocolVersion), ReplyGateway: g.cfg.ID,
		ReplyToken: l.token, ReceivedAt: time.Now()}
	if err := g.produce(r.Context(), ev, sid); err != nil {
		writeError(w, http.StatusServiceUnavailable, nil, jsonrpc.Errorf(jsonrpc.CodeInternalError, "opening the stream: %v", err))
		return "unavailable"
	}
	timer := time.NewTimer(g.cfg.RequestTimeout)
	defer timer.Stop()
	for opened := false; !opened; {
		select {
		case <-r.Context().Done():
			return "client_gone"
		case <-timer.C:
			writeError(w, http.StatusGatewayTimeout, nil, jsonrpc.Errorf(jsonrpc.CodeTimeout, "the session did not answer"))
			return "timeout"
		case d := <-wt.ch:
			if d.rep.Kind != schemas.ReplyAccepted {
				continue
			}
			if d.rep.HTTPStatus >= 300 {
				status := d.rep.HTTPStatus
				if status == http.StatusNotFound {
					writeError(w, status, nil, jsonrpc.Errorf(jsonrpc.CodeSessionNotFound, "session not found"))
					return "not_found"
				}
				writeError(w, status, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "the stream was refused"))
				return outcomeOf(status)
			}
			opened = true
		}
	}
	g.lst.add(l)
	defer g.lst.remove(l)
	sse := g.startSSE(w, sid)
	// A fresh event id per stream: a client that reconnects after losing
	// the stream (its gateway stopped) sees it change, which clients such as
	// the go-sdk count as progress; without it each loss over the session's
	// life counts against their retry limit. Coming back with it as
	// Last-Event-ID opens a new standalone stream (list changes are not
	// replayed: they are hints to list again).
	sse.prime(standaloneIDPrefix+streams.NewID(), 0)
	return g.pump(r.Context(), sse, l, wt, nil)
}

// standaloneIDPrefix starts the event ids of standalone GET streams; no
// reply-stream position (base64url) contains "~".
const standaloneIDPrefix = "~stream~"

// pump writes a notification stream until the client leaves. wt, if set,
// carries the processor's answers for a GET stream: notifications, or a 404
// once the session ended (DELETE, expiry), which ends the stream.
func (g *Gateway) pump(ctx context.Context, sse *sseWriter, l *listener, wt *waiter, tag func([]byte) []byte) string {
	keep := time.NewTicker(keepAliveEvery)
	defer keep.Stop()
	stop := g.lst.stopped()
	var replies chan delivery
	if wt != nil {
		replies = wt.ch
	}
	if tag == nil {
		tag = func(b []byte) []byte { return b }
	}
	for {
		select {
		case <-ctx.Done():
			return "ok"
		case <-stop:
			return "closed"
		case <-keep.C:
			sse.w.Write([]byte(": keep-alive\n\n"))
			sse.flush()
		case msg := <-l.ch:
			sse.send("", tag(msg))
		case d := <-replies:
			switch {
			case d.rep.Kind == schemas.ReplyNotification:
				sse.send("", tag(d.rep.Message))
			case d.rep.Kind == schemas.ReplyAccepted && d.rep.HTTPStatus == http.StatusNotFound:
				return "not_found"
			}
		}
	}
}

func orEmptyJSON(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || string(b) == "null" {
		return json.RawMessage("{}")
	}
	return b
}
