// Package notify carries server-originated notifications that are not
// answers to a request (notifications/tools/list_changed,
// prompts/list_changed, resources/list_changed, resources/updated) to every
// gateway, through the log.
//
// A change is written once to every partition of the replies topic, under a
// broadcast key (BroadcastPrefix + n) that hashes to that partition. Each
// gateway reads exactly one reply partition, so each gateway sees each change
// once, whichever process published it, and delivers it to the streams it
// holds: 2026-07-28 subscriptions/listen streams by their filter, 2025-11-25
// GET streams (resources/updated only after the sessions processor confirmed
// the session subscribed to the URI).
package notify
