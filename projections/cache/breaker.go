package cache

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// breaker keeps a dead Redis off the request path. Closed, every call goes
// to Redis. After threshold consecutive failures it opens: calls are
// refused until openUntil, then one call at a time probes. A probe that
// fails reopens it for twice as long (up to max); any success closes it.
//
// The closed path is two atomic loads and the open path three, so checking
// costs nothing next to the lookup it guards.
type breaker struct {
	threshold int32
	min, max  time.Duration
	onChange  func(open bool)

	failures  atomic.Int32
	openUntil atomic.Int64 // unix nanos; 0 while closed
	probing   atomic.Bool

	mu      sync.Mutex // serialises opening and closing
	backoff time.Duration
}

func newBreaker(threshold int, min, max time.Duration, onChange func(bool)) *breaker {
	return &breaker{threshold: int32(threshold), min: min, max: max, onChange: onChange}
}

// allow says whether a call may go to Redis; probe is true for the one call
// let through after the open window, which must report back with success,
// failure or release.
func (b *breaker) allow(now time.Time) (ok, probe bool) {
	u := b.openUntil.Load()
	if u == 0 {
		return true, false
	}
	if now.UnixNano() < u {
		return false, false
	}
	if b.probing.CompareAndSwap(false, true) {
		return true, true
	}
	return false, false
}

func (b *breaker) success() {
	if b.failures.Load() == 0 && b.openUntil.Load() == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures.Store(0)
	b.backoff = 0
	b.probing.Store(false)
	if b.openUntil.Swap(0) != 0 {
		b.onChange(false)
	}
}

func (b *breaker) failure(now time.Time, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.failures.Add(1)
	wasOpen := b.openUntil.Load() != 0
	if !wasOpen && n < b.threshold {
		return
	}
	switch {
	case b.backoff == 0:
		b.backoff = b.min
	case probe:
		b.backoff = min(2*b.backoff, b.max)
	}
	// Jitter spreads the probes of many gateways over the window.
	d := b.backoff*3/4 + rand.N(b.backoff/2+1)
	b.openUntil.Store(now.Add(d).UnixNano())
	if probe {
		b.probing.Store(false)
	}
	if !wasOpen {
		b.onChange(true)
	}
}

// release ends a probe that got no verdict (the caller gave up first).
func (b *breaker) release(probe bool) {
	if probe {
		b.probing.Store(false)
	}
}

func (b *breaker) open() bool { return b.openUntil.Load() != 0 }
