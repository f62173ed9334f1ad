package cache

// Kind is what was looked up.
type Kind string

// Kinds.
const (
	KindSession Kind = "session"
	KindResult  Kind = "result"
)

// Outcome is how a lookup or a store ended.
type Outcome string

// Outcomes. Every one except HitL1 and HitRedis is a miss for the caller.
const (
	HitL1    Outcome = "hit_l1"
	HitRedis Outcome = "hit_redis"
	Miss     Outcome = "miss"     // Redis answered: not there
	Error    Outcome = "error"    // Redis failed or timed out
	Skipped  Outcome = "skipped"  // breaker open: Redis not asked
	Canceled Outcome = "canceled" // the caller's context ended first
	Stored   Outcome = "stored"   // StoreResult reached Redis
)

// Metrics receives the cache's counters. ops/metrics adapts it to
// Prometheus; nil means none. Calls are on the request path: keep them cheap.
type Metrics interface {
	// Lookup counts one Session or Result call.
	Lookup(kind Kind, o Outcome)
	// Store counts one StoreResult call: Stored, Error or Skipped.
	Store(kind Kind, o Outcome)
	// Breaker reports the breaker opening (true) and closing (false).
	Breaker(open bool)
}

type nopMetrics struct{}

func (nopMetrics) Lookup(Kind, Outcome) {}
func (nopMetrics) Store(Kind, Outcome)  {}
func (nopMetrics) Breaker(bool)         {}
