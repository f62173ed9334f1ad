package sessions

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/mcpstream/mcpstream/jsonrpc"
	"github.com/mcpstream/mcpstream/processors/notify"
	"github.com/mcpstream/mcpstream/schemas"
)

// MaxSubscriptions bounds the resource subscriptions of one session: they
// live in its table value, which every request rewrites.
const MaxSubscriptions = 256

var emptyResult = []byte(`{"result":{}}`)

// subscription applies resources/subscribe and resources/unsubscribe to the
// session (2025-11-25; 2026-07-28 removed both for subscriptions/listen).
// next is nil for a replayed event: it was applied already. ok is false for
// other methods, or without resources.
func subscription(env Env, st, next *schemas.SessionState, ev *schemas.RequestEvent) (body []byte, mutated, ok bool) {
	if ev.Method != "resources/subscribe" && ev.Method != "resources/unsubscribe" {
		return nil, false, false
	}
	if env.Catalog == nil || !env.Catalog.ServesResources() {
		return nil, false, false
	}
	uri, e := uriParam(ev.Params)
	if e != nil {
		return jsonrpc.ErrorBody(e), false, true
	}
	if next == nil {
		return emptyResult, false, true
	}
	subs := slices.Clone(st.Subscriptions)
	i, found := slices.BinarySearch(subs, uri)
	switch {
	case ev.Method == "resources/subscribe" && !found:
		if len(subs) >= MaxSubscriptions {
			return jsonrpc.ErrorBody(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "a session may hold at most %d resource subscriptions", MaxSubscriptions)), false, true
		}
		subs = slices.Insert(subs, i, uri)
	case ev.Method == "resources/unsubscribe" && found:
		subs = slices.Delete(subs, i, i+1)
	default:
		return emptyResult, false, true
	}
	next.Subscriptions = subs
	return emptyResult, true, true
}

// resourceCheck answers the gateway that holds a GET stream of the session
// and saw a resource change: the session's own subscriptions decide, in log
// order with its subscribe and unsubscribe requests, whether the stream gets
// notifications/resources/updated. It is not activity: a stream that only
// listens does not keep a session alive.
func resourceCheck(st *schemas.SessionState, ev *schemas.RequestEvent, now time.Time) Outcome {
	var p struct {
		URI string `json:"uri"`
	}
	if json.Unmarshal(orEmpty(ev.Params), &p) != nil || p.URI == "" {
		return Outcome{}
	}
	if _, found := slices.BinarySearch(st.Subscriptions, p.URI); !found {
		return Outcome{}
	}
	msg, err := notify.Message(notify.ResourceUpdated, map[string]string{"uri": p.URI})
	if err != nil {
		return Outcome{}
	}
	return Outcome{Reply: &schemas.ReplyEvent{Gateway: ev.ReplyGateway, ReplyToken: ev.ReplyToken, EventID: ev.EventID,
		Kind: schemas.ReplyNotification, SessionID: ev.SessionID, Message: msg, ProducedAt: now}}
}

// notificationCapabilities adds what the notification path delivers when
// the deployment runs it (Env.Notifications): list changes to GET streams
// and subscriptions/listen streams, and resource updates to subscribers.
func notificationCapabilities(env Env, caps map[string]any) {
	if !env.Notifications {
		return
	}
	caps["tools"] = map[string]any{"listChanged": true}
	if _, ok := caps["prompts"]; ok {
		caps["prompts"] = map[string]any{"listChanged": true}
	}
	if _, ok := caps["resources"]; ok {
		caps["resources"] = map[string]any{"subscribe": true}
	}
}
