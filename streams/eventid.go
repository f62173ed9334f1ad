package streams

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// SessionEventID identifies a request within a session. MCP forbids a client
// to reuse a request id within a session, so (session, id) names one request
// and a retry of it carries the same event id.
func SessionEventID(sessionID string, rpcID []byte) string {
	return digest("s", sessionID, string(rpcID))
}

// KeyedEventID identifies a request by an explicit idempotency key from the
// client, scoped to its principal so one caller cannot read another's result.
func KeyedEventID(principal, key string) string {
	return digest("k", principal, key)
}

// KeyedRetryEventID identifies one round of a keyed stateless request
// that answers an input_required result (2026-07-28 multi round-trip
// requests): the client retries the same call, often with the same
// idempotency key, and each round is a new request. round is what the
// round adds (its inputResponses and requestState); an identical repeat of
// a round is still the same request.
func KeyedRetryEventID(principal, key string, round []byte) string {
	return digest("r", principal, key, string(round))
}

// NotificationEventID identifies a notification whose content makes it
// unique within a session (notifications/initialized, a cancellation of one
// request id).
func NotificationEventID(sessionID, method string, detail []byte) string {
	return digest("n", sessionID, method, string(detail))
}

// RandomEventID is for messages with no identity to dedup on: stateless
// requests without an idempotency key (clients reuse JSON-RPC ids across
// processes, so principal+id would merge unrelated calls).
func RandomEventID() string { return NewID() }

// NewID returns 128 random bits in hex, for session ids and reply tokens.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefix each part so ("ab","c") and ("a","bc") differ.
		var n [4]byte
		l := len(p)
		n[0], n[1], n[2], n[3] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l)
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
