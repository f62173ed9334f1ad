// Package processortest runs mcpstream's goka processors against goka's
// tester in unit tests: Start builds a processor with the tester option,
// runs it until the test ends, and returns once the processor is registered
// with the tester (messages consumed before that would not reach it).
package processortest

import (
	"context"
	"testing"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
)

// Runner is a processor: sessions.Processor or toolcalls.Processor.
type Runner interface {
	Run(ctx context.Context) error
}

// Start builds a processor with build (passing the options to put in its
// Config.Options) and runs it against tt until the test ends.
func Start(t *testing.T, tt *tester.Tester, build func(opts []goka.ProcessorOption) (Runner, error)) {
	t.Helper()
	registered := make(chan struct{})
	p, err := build([]goka.ProcessorOption{signalAfter(goka.WithTester(tt), registered)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-registered:
	case err := <-done:
		t.Fatalf("Run returned before the processor was set up: %v", err)
	}
}

// signalAfter wraps a processor option so that ch is closed once goka has
// applied it. With goka.WithTester that is the moment the processor is
// registered with the tester. O is goka's unexported options type, inferred.
func signalAfter[O any](opt func(O, *goka.GroupGraph), ch chan struct{}) func(O, *goka.GroupGraph) {
	return func(o O, gg *goka.GroupGraph) {
		opt(o, gg)
		close(ch)
	}
}
