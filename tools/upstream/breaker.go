package upstream

import (
	"fmt"
	"sync"
	"time"
)

// BreakerState is the state of an upstream's circuit breaker.
type BreakerState int

const (
	// BreakerClosed lets every call through.
	BreakerClosed BreakerState = iota
	// BreakerOpen fails every call fast until the cool-down has passed.
	BreakerOpen
	// BreakerHalfOpen lets a few probe calls through; one success closes
	// the circuit, one failure opens it again.
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("BreakerState(%d)", int(s))
}

// outcome is how one call went, as far as the breaker cares.
type outcome int

const (
	// outcomeIgnore: the call says nothing about the upstream's health
	// (the caller cancelled, our own pool was saturated).
	outcomeIgnore outcome = iota
	// outcomeSuccess: the upstream answered, even with a JSON-RPC error or
	// an isError result: it is alive and speaking MCP.
	outcomeSuccess
	// outcomeFailure: no answer (connect failure, broken transport, missed
	// deadline).
	outcomeFailure
)

// breaker is a consecutive-failures circuit breaker. It is deliberately
// count-based rather than rate-based: an upstream sees few calls per second
// in most deployments, and "N failures in a row" is easy to reason about
// and to test.
type breaker struct {
	threshold int
	openFor   time.Duration
	probes    int
	now       func() time.Time

	mu       sync.Mutex
	state    BreakerState
	failures int // consecutive, while closed
	openedAt time.Time
	inProbe  int   // probes in flight, while half-open
	lastErr  error // the failure that opened the circuit
	// gen changes on every state transition, so a ticket issued in an
	// earlier state (a slow call started before the circuit opened) cannot
	// move the breaker when it finally reports.
	gen uint64
}

func newBreaker(cfg BreakerConfig, now func() time.Time) *breaker {
	if now == nil {
		now = time.Now
	}
	return &breaker{threshold: cfg.Failures, openFor: cfg.OpenFor.D(), probes: cfg.HalfOpenProbes, now: now}
}

// ticket is the permission for one call; done must be called exactly once.
type ticket struct {
	b     *breaker
	gen   uint64
	probe bool
}

// openError is returned by allow while the circuit is open.
type openError struct {
	failures   int
	retryAfter time.Duration
	last       error
}

func (e *openError) Error() string {
	msg := fmt.Sprintf("%v after %d consecutive failures; next probe in %s", ErrCircuitOpen, e.failures, e.retryAfter.Round(time.Millisecond))
	if e.last != nil {
		msg += fmt.Sprintf(" (last failure: %v)", e.last)
	}
	return msg
}

func (e *openError) Unwrap() error { return ErrCircuitOpen }

// allow asks to make a call. It fails with an *openError wrapping
// ErrCircuitOpen while the circuit is open, or half-open with all probe
// slots taken.
func (b *breaker) allow() (*ticket, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerOpen {
		if wait := b.openFor - b.now().Sub(b.openedAt); wait > 0 {
			return nil, &openError{failures: b.threshold, retryAfter: wait, last: b.lastErr}
		}
		b.transition(BreakerHalfOpen)
	}
	if b.state == BreakerHalfOpen {
		if b.inProbe >= b.probes {
			return nil, &openError{failures: b.threshold, retryAfter: 0, last: b.lastErr}
		}
		b.inProbe++
		return &ticket{b: b, gen: b.gen, probe: true}, nil
	}
	return &ticket{b: b, gen: b.gen}, nil
}

func (t *ticket) done(o outcome, err error) {
	b := t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.gen != b.gen {
		return
	}
	if t.probe {
		b.inProbe--
		switch o {
		case outcomeSuccess:
			b.transition(BreakerClosed)
		case outcomeFailure:
			b.lastErr = err
			b.transition(BreakerOpen)
		}
		return
	}
	switch o {
	case outcomeSuccess:
		b.failures = 0
	case outcomeFailure:
		b.failures++
		if b.failures >= b.threshold {
			b.lastErr = err
			b.transition(BreakerOpen)
		}
	}
}

func (b *breaker) transition(s BreakerState) {
	b.state = s
	b.gen++
	b.failures = 0
	b.inProbe = 0
	if s == BreakerOpen {
		b.openedAt = b.now()
	}
	if s == BreakerClosed {
		b.lastErr = nil
	}
}

// State reports the current state; an open circuit whose cool-down has
// passed reports half-open (the next call will probe).
func (b *breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerOpen && b.now().Sub(b.openedAt) >= b.openFor {
		return BreakerHalfOpen
	}
	return b.state
}
