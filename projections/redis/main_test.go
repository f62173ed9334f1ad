package redis

import (
	"log/slog"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// Outage tests make go-redis print a line per failed dial.
	RouteClientLogs(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
