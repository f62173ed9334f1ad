package cache

import (
	"slices"
	"testing"
	"time"
)

func TestBreakerStates(t *testing.T) {
	var changes []bool
	b := newBreaker(3, 100*time.Millisecond, 400*time.Millisecond, func(open bool) { changes = append(changes, open) })
	t0 := time.Unix(1000, 0)
	mustAllow := func(at time.Time, wantOK, wantProbe bool) {
		t.Helper()
		ok, probe := b.allow(at)
		if ok != wantOK || probe != wantProbe {
			t.Fatalf("allow at +%v = %v/%v, want %v/%v", at.Sub(t0), ok, probe, wantOK, wantProbe)
		}
	}

	// Two failures, then a success: the count starts over.
	b.failure(t0, false)
	b.failure(t0, false)
	b.success()
	b.failure(t0, false)
	b.failure(t0, false)
	mustAllow(t0, true, false)
	// The third consecutive one opens it, for 75-125 ms (100 ms, jittered).
	b.failure(t0, false)
	mustAllow(t0.Add(74*time.Millisecond), false, false)
	// After the window exactly one caller probes.
	at := t0.Add(126 * time.Millisecond)
	mustAllow(at, true, true)
	mustAllow(at, false, false)
	// A failed probe doubles the window: 150-250 ms.
	b.failure(at, true)
	mustAllow(at.Add(149*time.Millisecond), false, false)
	at = at.Add(251 * time.Millisecond)
	mustAllow(at, true, true)
	// A probe whose caller gave up lets the next caller probe.
	b.release(true)
	mustAllow(at, true, true)
	// Doubling stops at max (400 ms: 300-500 ms).
	for range 4 {
		b.failure(at, true)
		at = at.Add(501 * time.Millisecond)
		mustAllow(at, true, true)
	}
	b.failure(at, true)
	mustAllow(at.Add(299*time.Millisecond), false, false)
	// A success closes it and resets the window.
	mustAllow(at.Add(501*time.Millisecond), true, true)
	b.success()
	mustAllow(at.Add(501*time.Millisecond), true, false)
	if b.open() {
		t.Fatal("still open after a success")
	}
	b.failure(at, false)
	b.failure(at, false)
	b.failure(at, false)
	mustAllow(at.Add(126*time.Millisecond), true, true) // back to the 100 ms window
	if want := []bool{true, false, true}; !slices.Equal(changes, want) {
		t.Errorf("transitions %v, want %v", changes, want)
	}
}
