package metrics

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Latency buckets from 0.5 ms to ~30 s: request/reply over Kafka lives in
// the low milliseconds, tools can take seconds.
var buckets = prometheus.ExponentialBucketsRange(0.0005, 30, 20)

// knownMethods bounds the method label: a client can send any string, and
// every distinct label value is a time series.
var knownMethods = map[string]bool{
	"initialize": true, "ping": true, "tools/list": true, "tools/call": true, "server/discover": true,
	"notifications/initialized": true, "notifications/cancelled": true, "DELETE": true, "response": true,
	"invalid": true, "resources/list": true, "resources/read": true, "prompts/list": true, "prompts/get": true,
}

// Gateway implements gateway.Metrics.
type Gateway struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	produce  *prometheus.HistogramVec
	lag      prometheus.Gauge
}

// NewGateway registers the gateway's metrics.
func NewGateway(reg prometheus.Registerer, gatewayID string) *Gateway {
	f := prometheus.WrapRegistererWith(prometheus.Labels{"gateway": gatewayID}, reg)
	g := &Gateway{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpstream_requests_total",
			Help: "MCP HTTP requests by method and outcome."}, []string{"method", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mcpstream_request_duration_seconds",
			Help: "End-to-end latency of MCP HTTP requests, through Kafka and back.", Buckets: buckets}, []string{"method"}),
		produce: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mcpstream_kafka_produce_duration_seconds",
			Help: "Latency of producing one request event with acks=all.", Buckets: buckets}, []string{"outcome"}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mcpstream_gateway_reply_lag_records",
			Help: "Records behind the end of this gateway's reply partition."}),
	}
	f.MustRegister(g.requests, g.latency, g.produce, g.lag)
	return g
}

func method(m string) string {
	if knownMethods[m] {
		return m
	}
	if len(m) > 14 && m[:14] == "notifications/" {
		return "notifications/other"
	}
	return "other"
}

// Request implements gateway.Metrics.
func (g *Gateway) Request(m, outcome string, d time.Duration) {
	m = method(m)
	g.requests.WithLabelValues(m, outcome).Inc()
	g.latency.WithLabelValues(m).Observe(d.Seconds())
}

// Produce implements gateway.Metrics.
func (g *Gateway) Produce(d time.Duration, err error) {
	o := "ok"
	if err != nil {
		o = "error"
	}
	g.produce.WithLabelValues(o).Observe(d.Seconds())
}

// ReplyLag implements gateway.Metrics.
func (g *Gateway) ReplyLag(n int64) { g.lag.Set(float64(n)) }

// Executor counts jobs.
type Executor struct {
	jobs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewExecutor registers the executor's metrics.
func NewExecutor(reg prometheus.Registerer, id string) *Executor {
	f := prometheus.WrapRegistererWith(prometheus.Labels{"executor": id}, reg)
	e := &Executor{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpstream_executor_jobs_total",
			Help: "Tool jobs run, by tool and outcome."}, []string{"tool", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mcpstream_executor_job_duration_seconds",
			Help: "Tool run time.", Buckets: buckets}, []string{"tool"}),
	}
	f.MustRegister(e.jobs, e.duration)
	return e
}

// Observe is the executor's observe hook.
func (e *Executor) Observe(tool, outcome string, d time.Duration) {
	e.jobs.WithLabelValues(tool, outcome).Inc()
	e.duration.WithLabelValues(tool).Observe(d.Seconds())
}

// LagCollector reports consumer-group lag per partition, asked of the
// brokers at scrape time so it is right even when the group's members are
// down (which is when lag matters).
type LagCollector struct {
	adm    *kadm.Client
	groups []string
	log    *slog.Logger
	desc   *prometheus.Desc
}

// NewLagCollector builds the collector; register it with MustRegister.
func NewLagCollector(adm *kadm.Client, log *slog.Logger, groups ...string) *LagCollector {
	return &LagCollector{adm: adm, groups: groups, log: log,
		desc: prometheus.NewDesc("mcpstream_consumer_lag_records", "Records not yet processed by a consumer group, per partition.",
			[]string{"group", "topic", "partition"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *LagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *LagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	lags, err := c.adm.Lag(ctx, c.groups...)
	if err != nil {
		c.log.Warn("collecting consumer lag", "err", err)
		return
	}
	lags.Each(func(l kadm.DescribedGroupLag) {
		for topic, ps := range l.Lag {
			for p, m := range ps {
				if m.Err != nil {
					continue
				}
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(m.Lag), l.Group, topic, strconv.Itoa(int(p)))
			}
		}
	})
}
