package gateway

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// streamPos names one event of a request's reply stream by where it lies in
// the durable log: the reply partition of the gateway that took the request
// (derived from its id), the request's reply token, and the event's offset.
// It is the SSE event id, so a client that lost its connection can resume
// with Last-Event-ID at ANY gateway: that gateway reads the rest of the
// stream from the log, not from the gateway that may have died. The JSON-RPC
// id rides along because replies travel without it.
type streamPos struct {
	Gateway string
	Token   string
	Offset  int64
	RPCID   json.RawMessage
}

const eventIDVersion = "1"

func (p streamPos) eventID() string {
	raw := strings.Join([]string{eventIDVersion, p.Gateway, p.Token, strconv.FormatInt(p.Offset, 10), string(p.RPCID)}, "\x00")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

var errBadEventID = errors.New("malformed Last-Event-ID")

func parseEventID(s string) (streamPos, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return streamPos{}, errBadEventID
	}
	parts := strings.SplitN(string(b), "\x00", 5)
	if len(parts) != 5 || parts[0] != eventIDVersion || parts[1] == "" || len(parts[2]) != 32 {
		return streamPos{}, errBadEventID
	}
	off, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil || off < -1 {
		return streamPos{}, errBadEventID
	}
	id := json.RawMessage(parts[4])
	if len(id) > 0 && validID(id) == nil {
		return streamPos{}, errBadEventID
	}
	return streamPos{Gateway: parts[1], Token: parts[2], Offset: off, RPCID: id}, nil
}

type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func (g *Gateway) startSSE(w http.ResponseWriter, sessionID string) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	if sessionID != "" {
		h.Set(hSessionID, sessionID)
	}
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &sseWriter{w: w, f: f}
}

// send writes one event; id may be empty (2026-07-28 streams are not
// resumable).
func (s *sseWriter) send(id string, msg []byte) {
	if id != "" {
		s.w.Write([]byte("id: " + id + "\n"))
	}
	s.w.Write([]byte("event: message\ndata: "))
	s.w.Write(msg)
	s.w.Write([]byte("\n\n"))
	s.flush()
}

// prime sends an event id with empty data, as 2025-11-25 recommends, so a
// client cut off before the first real event can still resume.
// With retry set, it also tells the client how soon to reconnect when the
// server closes the stream (SEP-1699).
func (s *sseWriter) prime(id string, retry time.Duration) {
	if retry > 0 {
		s.w.Write([]byte("retry: " + strconv.FormatInt(retry.Milliseconds(), 10) + "\n"))
	}
	s.w.Write([]byte("id: " + id + "\ndata:\n\n"))
	s.flush()
}

func (s *sseWriter) flush() {
	if s.f != nil {
		s.f.Flush()
	}
}
