package sessions_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/processors/notify"
	"github.com/mcpstream/mcpstream/processors/sessions"
	"github.com/mcpstream/mcpstream/schemas"
)

func TestSubscriptionsRecordedInSession(t *testing.T) {
	env := catalogEnv(t)
	st := session(schemas.SessionActive)
	apply := func(method, uri string) {
		t.Helper()
		out := sessions.Handle(env, st, req(method, `{"uri":"`+uri+`"}`), st.LastOffset+1, now)
		if out.Reply == nil || string(out.Reply.Message) != `{"result":{}}` {
			t.Fatalf("%s %s: reply %+v, want {}", method, uri, out.Reply)
		}
		if out.State != nil {
			st = out.State
		}
	}
	apply("resources/subscribe", "test://b")
	apply("resources/subscribe", "test://a")
	apply("resources/subscribe", "test://b") // twice: once recorded
	if want := []string{"test://a", "test://b"}; !slices.Equal(st.Subscriptions, want) {
		t.Fatalf("subscriptions = %v, want %v", st.Subscriptions, want)
	}
	apply("resources/unsubscribe", "test://b")
	apply("resources/unsubscribe", "test://never") // not subscribed: still {}
	if want := []string{"test://a"}; !slices.Equal(st.Subscriptions, want) {
		t.Fatalf("after unsubscribe: %v, want %v", st.Subscriptions, want)
	}

	// A replayed subscribe (offset already applied) changes nothing.
	out := sessions.Handle(env, st, req("resources/subscribe", `{"uri":"test://z"}`), st.LastOffset, now)
	if out.State != nil {
		t.Errorf("replayed subscribe wrote %+v", out.State)
	}
}

func TestResourceCheckAnswersOnlySubscribers(t *testing.T) {
	env := catalogEnv(t)
	check := func(st *schemas.SessionState, uri string) sessions.Outcome {
		e := ev(schemas.KindNotification, notify.CheckSubscription, `{"uri":"`+uri+`"}`)
		return sessions.Handle(env, st, e, nextOff, now)
	}
	sub := session(schemas.SessionActive, func(s *schemas.SessionState) { s.Subscriptions = []string{"test://watched-resource"} })
	out := check(sub, "test://watched-resource")
	if out.Reply == nil || out.Reply.Kind != schemas.ReplyNotification || out.Reply.Gateway != gw || out.Reply.ReplyToken != token {
		t.Fatalf("subscribed session: reply %+v, want a notification to %s/%s", out.Reply, gw, token)
	}
	var m struct {
		Method string `json:"method"`
		Params struct {
			URI string `json:"uri"`
		} `json:"params"`
	}
	if err := json.Unmarshal(out.Reply.Message, &m); err != nil || m.Method != notify.ResourceUpdated || m.Params.URI != "test://watched-resource" {
		t.Errorf("message %s, want resources/updated for the URI (err %v)", out.Reply.Message, err)
	}
	if out.State != nil {
		t.Errorf("a check is not activity; wrote %+v", out.State)
	}
	if out := check(sub, "test://other"); out.Reply != nil || out.State != nil {
		t.Errorf("unsubscribed URI: %+v", out)
	}
	if out := check(nil, "test://watched-resource"); out.Reply == nil || out.Reply.HTTPStatus != 404 {
		t.Errorf("missing session: %+v, want 404 (the gateway ends the stream)", out.Reply)
	}
}

func TestCapabilitiesFollowNotifications(t *testing.T) {
	caps := func(notifications bool) map[string]any {
		env := catalogEnv(t)
		env.Notifications = notifications
		out := sessions.Handle(env, nil, req("initialize", `{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}`), nextOff, now)
		var b struct {
			Result struct {
				Capabilities map[string]any `json:"capabilities"`
			} `json:"result"`
		}
		if err := json.Unmarshal(out.Reply.Message, &b); err != nil {
			t.Fatalf("initialize result %s: %v", out.Reply.Message, err)
		}
		return b.Result.Capabilities
	}
	on, off := caps(true), caps(false)
	if on["tools"].(map[string]any)["listChanged"] != true || on["resources"].(map[string]any)["subscribe"] != true ||
		on["prompts"].(map[string]any)["listChanged"] != true {
		t.Errorf("with notifications: %v", on)
	}
	if len(off["tools"].(map[string]any)) != 0 || len(off["resources"].(map[string]any)) != 0 {
		t.Errorf("without notifications nothing is promised: %v", off)
	}
}

func TestIdleExpiry(t *testing.T) {
	env := testEnv()
	env.IdleTimeout = time.Minute
	// Idle longer than the timeout: 404 and the entry is deleted.
	st := session(schemas.SessionActive, idle(2*time.Minute))
	out := sessions.Handle(env, st, req("ping", `{}`), nextOff, now)
	if out.Reply == nil || out.Reply.HTTPStatus != 404 || !out.Delete {
		t.Fatalf("expired session: reply %+v delete %v, want 404 and delete", out.Reply, out.Delete)
	}
	// Within the timeout: served, not deleted.
	st = session(schemas.SessionActive, idle(50*time.Second))
	out = sessions.Handle(env, st, req("ping", `{}`), nextOff, now)
	if out.Reply == nil || out.Reply.HTTPStatus != 200 || out.Delete {
		t.Fatalf("live session: reply %+v delete %v", out.Reply, out.Delete)
	}
	// The activity time is rewritten well within the timeout (a tenth),
	// so a session in use never looks idle.
	if out.State == nil || !out.State.LastActivity.Equal(now) {
		t.Errorf("activity of a session idle for 5/6 of its timeout not written: %+v", out.State)
	}
	// No timeout: never expires.
	env.IdleTimeout = 0
	st = session(schemas.SessionActive, idle(1000*time.Hour))
	if out := sessions.Handle(env, st, req("ping", `{}`), nextOff, now); out.Reply.HTTPStatus != 200 || out.Delete {
		t.Errorf("without a timeout: %+v", out)
	}
}
