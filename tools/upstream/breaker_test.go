package upstream

import (
	"errors"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestBreaker(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := newBreaker(BreakerConfig{Failures: 3, OpenFor: Duration(10 * time.Second), HalfOpenProbes: 1}, clk.now)
	fail := errors.New("boom")
	run := func(o outcome) error {
		tk, err := b.allow()
		if err != nil {
			return err
		}
		tk.done(o, fail)
		return nil
	}

	// Successes reset the count; ignored outcomes change nothing.
	for _, o := range []outcome{outcomeFailure, outcomeFailure, outcomeSuccess, outcomeFailure, outcomeFailure, outcomeIgnore} {
		if err := run(o); err != nil {
			t.Fatalf("closed breaker refused a call: %v", err)
		}
	}
	if b.State() != BreakerClosed {
		t.Fatalf("state %v after non-consecutive failures", b.State())
	}
	// A slow call admitted while closed...
	slow, _ := b.allow()
	_ = run(outcomeFailure) // third consecutive: opens
	if b.State() != BreakerOpen {
		t.Fatalf("state %v after 3 consecutive failures", b.State())
	}
	// ...cannot close it by succeeding late.
	slow.done(outcomeSuccess, nil)
	if b.State() != BreakerOpen {
		t.Fatalf("a ticket from before the opening moved the breaker")
	}
	err := run(outcomeSuccess)
	var oe *openError
	if !errors.Is(err, ErrCircuitOpen) || !errors.As(err, &oe) || oe.retryAfter != 10*time.Second {
		t.Fatalf("open: %v", err)
	}
	clk.t = clk.t.Add(4 * time.Second)
	if err := run(outcomeSuccess); !errors.As(err, &oe) || oe.retryAfter != 6*time.Second {
		t.Fatalf("retry-after should count down: %+v", oe)
	}

	// Half-open: one probe at a time; its failure re-opens for a full period.
	clk.t = clk.t.Add(6 * time.Second)
	if b.State() != BreakerHalfOpen {
		t.Fatalf("state %v after the cool-down", b.State())
	}
	probe, err := b.allow()
	if err != nil || !probe.probe {
		t.Fatalf("probe refused: %v", err)
	}
	if _, err := b.allow(); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("second concurrent probe admitted: %v", err)
	}
	probe.done(outcomeFailure, fail)
	if err := run(outcomeSuccess); !errors.As(err, &oe) || oe.retryAfter != 10*time.Second {
		t.Fatalf("failed probe should re-open for the full period: %v", err)
	}

	// An ignored probe (the caller cancelled) frees the probe slot only.
	clk.t = clk.t.Add(10 * time.Second)
	probe, _ = b.allow()
	probe.done(outcomeIgnore, nil)
	if b.State() != BreakerHalfOpen {
		t.Fatalf("ignored probe changed state to %v", b.State())
	}
	// A successful probe closes it, and failures count from zero again.
	if err := run(outcomeSuccess); err != nil {
		t.Fatal(err)
	}
	if b.State() != BreakerClosed {
		t.Fatalf("state %v after a successful probe", b.State())
	}
	_ = run(outcomeFailure)
	_ = run(outcomeFailure)
	if b.State() != BreakerClosed {
		t.Fatalf("failure count not reset on close")
	}
}
