package executor

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/mcpstream/mcpstream/tools"
)

// The embedded broker (kfake) serves share groups, so auto picks them; an
// explicit mode is kept as asked.
func TestModeSelection(t *testing.T) {
	b, err := streams.NewBroker(streams.BrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sc := streams.Config{Brokers: b.Addrs(), Partitions: 3}
	cl, err := streams.NewClient(sc, "admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := streams.EnsureTopicsConfig(ctx, kadm.NewClient(cl), sc); err != nil {
		t.Fatal(err)
	}
	tr, err := tools.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ask, want Mode }{{ModeAuto, ModeShare}, {ModeGroup, ModeGroup}, {ModeShare, ModeShare}} {
		e, err := New(schemas.MustLoad(), tr, Config{Streams: sc, ID: "x-" + string(tc.ask), Mode: tc.ask, Lease: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- e.Run(rctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for e.Mode() == ModeAuto && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := e.Mode(); got != tc.want {
			t.Errorf("mode %s resolved to %s, want %s", tc.ask, got, tc.want)
		}
		rcancel()
		if err := <-done; err != nil {
			t.Errorf("Run (%s): %v", tc.ask, err)
		}
	}
	if _, err := New(schemas.MustLoad(), tr, Config{Streams: sc, ID: "x", Mode: "fast"}); err == nil {
		t.Error("New accepted an unknown mode")
	}
}
