package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpstream/mcpstream/projections/cache"
	redisproj "github.com/mcpstream/mcpstream/projections/redis"
)

var (
	_ redisproj.ProjectorMetrics = (*RedisProjector)(nil)
	_ cache.Metrics              = (*Cache)(nil)
)

// RedisProjector implements redis.ProjectorMetrics.
type RedisProjector struct {
	records  prometheus.Counter
	writes   *prometheus.CounterVec
	batch    prometheus.Histogram
	failures prometheus.Counter
	up       prometheus.Gauge
	rebuilds *prometheus.CounterVec
	skipped  prometheus.Counter
}

// NewRedisProjector registers the Redis projector's metrics.
func NewRedisProjector(reg prometheus.Registerer) *RedisProjector {
	m := &RedisProjector{
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "mcpstream_redis_projector_records_total",
			Help: "Session table records projected into Redis (committed)."}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpstream_redis_projector_writes_total",
			Help: "Session writes sent to Redis after collapsing a batch, by outcome (applied, stale)."}, []string{"outcome"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mcpstream_redis_projector_batch_duration_seconds",
			Help: "Time to get one batch into Redis, retries included.", Buckets: buckets}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "mcpstream_redis_projector_redis_failures_total",
			Help: "Failed attempts to write a batch to Redis."}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mcpstream_redis_projector_redis_up",
			Help: "1 if the projector's last Redis write succeeded."}),
		rebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpstream_redis_projector_rebuilds_total",
			Help: "Partitions rewound to offset 0 because Redis lost their data."}, []string{"partition"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "mcpstream_redis_projector_skipped_total",
			Help: "Undecodable session table records skipped."}),
	}
	reg.MustRegister(m.records, m.writes, m.batch, m.failures, m.up, m.rebuilds, m.skipped)
	m.up.Set(1)
	return m
}

func (m *RedisProjector) BatchApplied(records, writes, stale int, d time.Duration) {
	m.records.Add(float64(records))
	m.writes.WithLabelValues("applied").Add(float64(writes - stale))
	m.writes.WithLabelValues("stale").Add(float64(stale))
	m.batch.Observe(d.Seconds())
}
func (m *RedisProjector) RedisFailed() { m.failures.Inc() }
func (m *RedisProjector) RedisUp(up bool) {
	if up {
		m.up.Set(1)
	} else {
		m.up.Set(0)
	}
}
func (m *RedisProjector) PartitionRebuilt(p int32) {
	m.rebuilds.WithLabelValues(strconv.Itoa(int(p))).Inc()
}
func (m *RedisProjector) RecordSkipped() { m.skipped.Inc() }

// Cache implements cache.Metrics for one gateway.
type Cache struct {
	lookups *prometheus.CounterVec
	stores  *prometheus.CounterVec
	open    prometheus.Gauge
	opens   prometheus.Counter
}

// NewCache registers the gateway cache's metrics.
func NewCache(reg prometheus.Registerer, gatewayID string) *Cache {
	f := prometheus.WrapRegistererWith(prometheus.Labels{"gateway": gatewayID}, reg)
	c := &Cache{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpstream_cache_lookups_total",
			Help: "Gateway cache lookups by kind (session, result) and outcome (hit_l1, hit_redis, miss, error, skipped, canceled)."},
			[]string{"kind", "outcome"}),
		stores: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpstream_cache_stores_total",
			Help: "Gateway cache stores by kind and outcome (stored, error, skipped)."}, []string{"kind", "outcome"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mcpstream_cache_breaker_open",
			Help: "1 while the gateway skips Redis after repeated failures."}),
		opens: prometheus.NewCounter(prometheus.CounterOpts{Name: "mcpstream_cache_breaker_opens_total",
			Help: "Times the gateway cache's breaker opened."}),
	}
	f.MustRegister(c.lookups, c.stores, c.open, c.opens)
	return c
}

func (c *Cache) Lookup(k cache.Kind, o cache.Outcome) {
	c.lookups.WithLabelValues(string(k), string(o)).Inc()
}
func (c *Cache) Store(k cache.Kind, o cache.Outcome) {
	c.stores.WithLabelValues(string(k), string(o)).Inc()
}
func (c *Cache) Breaker(open bool) {
	if open {
		c.open.Set(1)
		c.opens.Inc()
	} else {
		c.open.Set(0)
	}
}

// Projector implements projections.Metrics.
type Projector struct {
	events   prometheus.Counter
	failures prometheus.Counter
	rejected *prometheus.CounterVec
	batch    prometheus.Histogram
}

// NewProjector registers the PostgreSQL projector's metrics.
func NewProjector(reg prometheus.Registerer) *Projector {
	p := &Projector{
		events:   prometheus.NewCounter(prometheus.CounterOpts{Name: "mcpstream_projector_events_total", Help: "Records applied to the PostgreSQL projections."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "mcpstream_projector_batch_failures_total", Help: "Failed batch attempts (retried)."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpstream_projector_rejected_total", Help: "Undecodable records skipped."}, []string{"topic"}),
		batch:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mcpstream_projector_batch_duration_seconds", Help: "Time of one batch transaction.", Buckets: buckets}),
	}
	reg.MustRegister(p.events, p.failures, p.rejected, p.batch)
	return p
}

// Applied implements projections.Metrics.
func (p *Projector) Applied(n int, d time.Duration) {
	p.events.Add(float64(n))
	p.batch.Observe(d.Seconds())
}

// Failed implements projections.Metrics.
func (p *Projector) Failed(error) { p.failures.Inc() }

// Rejected implements projections.Metrics.
func (p *Projector) Rejected(topic string) { p.rejected.WithLabelValues(topic).Inc() }
