package gateway

import (
	"net/http"
)

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
	s := &sseWriter{w: w, f: f}
	return s
}

func (s *sseWriter) send(msg []byte) {
	s.w.Write([]byte("event: message\ndata: "))
	s.w.Write(msg)
	s.w.Write([]byte("\n\n"))
	if s.f != nil {
		s.f.Flush()
	}
}
