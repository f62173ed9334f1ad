package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/processors/notify"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

// Metrics receives what the gateway measures; ops/metrics implements it
// with Prometheus. Nil means no metrics.
type Metrics interface {
	// Request is called once per HTTP request with the MCP method (or
	// "invalid"), how it ended (ok, error, rejected, timeout, ...) and
	// how long it took end to end.
	Request(method, outcome string, d time.Duration)
	// Produce is called once per request event written to Kafka.
	Produce(d time.Duration, err error)
	// ReplyLag is the gateway's lag on its reply partition, in records.
	ReplyLag(records int64)
}

// Config configures a gateway.
type Config struct {
	Streams streams.Config
	// ID names this replica; it is the key of its replies. Empty: random.
	ID string
	// MaxBodyBytes bounds a request body (HTTP 413 above). Zero: 4 MiB.
	MaxBodyBytes int64
	// RequestTimeout bounds the wait for a reply. Zero: 5 minutes (tools
	// may run that long); a client that retries with the same JSON-RPC id
	// gets the eventual result without running the tool again.
	RequestTimeout time.Duration
	// SSEPollAfter, when set, makes tools/call in 2025-11-25 sessions
	// answer on an SSE stream that the gateway closes after this long if
	// the call is still running (SEP-1699 polling): the client reconnects
	// with GET and Last-Event-ID, to any gateway, after the retry interval
	// announced in the priming event. Long calls then hold no connection.
	SSEPollAfter time.Duration
	// AllowedOrigins are Origin values (scheme://host[:port]) accepted on
	// top of localhost ones. "*" accepts any (do not, on a laptop).
	AllowedOrigins []string
	// AllowedHosts are Host header names accepted on top of localhost ones
	// when the gateway listens on loopback (DNS-rebinding protection).
	AllowedHosts []string
	// PublicHost disables the Host check, for gateways behind a proxy that
	// listens on a public name.
	PublicHost bool
	Logger     *slog.Logger
	Metrics    Metrics
	// Results caches cacheable 2026-07-28 results (those carrying ttlMs
	// and cacheScope: lists, server/discover, some reads) so a repeat is
	// answered without a trip through the log. Nil: no cache. Session
	// requests never use it: they must reach the processor, which keeps
	// the session alive.
	Results ResultCache
}

// ResultCache is the gateway's view of a result cache
// (projections/cache implements it over ristretto and Redis). A miss, for
// whatever reason, only means "ask the log".
type ResultCache interface {
	Lookup(ctx context.Context, protocolVersion, method string, params json.RawMessage, principal string) (body []byte, ok bool)
	Offer(ctx context.Context, protocolVersion, method string, params json.RawMessage, principal string, body []byte)
}

// cacheable are the 2026-07-28 methods whose results may carry caching
// hints.
var cacheable = map[string]bool{"tools/list": true, "prompts/list": true, "resources/list": true,
	"resources/templates/list": true, "resources/read": true, "server/discover": true}

// MaxEnvelopeBytes is what a request's event may add to its body:
// headers, ids, and the session's client info and capabilities in a tool
// job (which the sessions processor caps at 256 KiB).
const MaxEnvelopeBytes = 512 << 10

// Gateway serves the MCP endpoint.
type Gateway struct {
	cfg  Config
	reg  *schemas.Registry
	log  *slog.Logger
	cl   atomic.Pointer[kgo.Client] // producer; replaced when Run restarts
	part int32

	mu      sync.Mutex
	pending map[string]*waiter
	ready   atomic.Bool
	// consumed is the last offset read from the reply partition: every
	// reply to a request registered now lies after it.
	consumed atomic.Int64
	// kafkaOK is false while the cluster does not answer: /readyz then
	// takes this replica out of rotation.
	kafkaOK atomic.Bool
	// lst holds the notification streams of this replica (listen.go).
	lst listenerSet
}

// New builds a gateway. It connects lazily; Run must be called before
// requests can be answered (the handler reports 503 until then).
func New(reg *schemas.Registry, cfg Config) (*Gateway, error) {
	cfg.Streams = cfg.Streams.WithDefaults()
	if err := cfg.Streams.Validate(); err != nil {
		return nil, err
	}
	if cfg.ID == "" {
		cfg.ID = "gw-" + streams.NewID()[:12]
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	// The event carrying a body adds a few hundred bytes, and a tool job
	// adds the session's capabilities (capped at initialize): a body the
	// log cannot hold must be refused here with 413, not by the broker.
	if limit := int64(cfg.Streams.MaxMessageBytes) - MaxEnvelopeBytes; cfg.MaxBodyBytes > limit {
		return nil, fmt.Errorf("gateway: MaxBodyBytes %d exceeds what a Kafka record may hold (%d = MaxMessageBytes - %d)", cfg.MaxBodyBytes, limit, MaxEnvelopeBytes)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	g := &Gateway{cfg: cfg, reg: reg, log: cfg.Logger.With("gateway", cfg.ID), pending: map[string]*waiter{}}
	g.part = streams.PartitionFor(cfg.ID, cfg.Streams.Partitions)
	return g, nil
}

// ID is the gateway's replica id.
func (g *Gateway) ID() string { return g.cfg.ID }

// Ready reports whether the gateway can answer requests: its reply
// consumer is positioned and the cluster answered recently.
func (g *Gateway) Ready() bool { return g.ready.Load() && g.kafkaOK.Load() }

// watchKafka pings the cluster so readiness follows reachability.
func (g *Gateway) watchKafka(ctx context.Context, cl *kgo.Client) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := cl.Ping(pctx)
			cancel()
			if ok := err == nil; ok != g.kafkaOK.Swap(ok) {
				if ok {
					g.log.Info("kafka reachable again")
				} else {
					g.log.Warn("kafka unreachable; not ready", "err", err)
				}
			}
		}
	}
}

// Run positions the reply consumer at the end of this gateway's reply
// partition, then dispatches replies until ctx is done.
func (g *Gateway) Run(ctx context.Context) error {
	// Clients are made here, not in New, so a gateway that never runs
	// holds no connections. The handler reads g.cl only once ready is set.
	cl, err := streams.NewClient(g.cfg.Streams, "gateway-"+g.cfg.ID, g.cfg.Logger)
	if err != nil {
		return err
	}
	g.cl.Store(cl)
	defer cl.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := streams.Ping(ctx, cl); err != nil {
		return fmt.Errorf("gateway %s: %w", g.cfg.ID, err)
	}
	topic := g.cfg.Streams.Topics.Replies()
	// Start exactly at the current end: everything produced for us after
	// this point is ours to read, nothing before is.
	adm := kadm.NewClient(cl)
	var start int64 = -1
	for start < 0 {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			if o, ok := ends.Lookup(topic, g.part); ok && o.Err == nil {
				start = o.Offset
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(300 * time.Millisecond):
		}
	}
	rc, err := streams.NewClient(g.cfg.Streams, "gateway-replies-"+g.cfg.ID, g.cfg.Logger,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {g.part: kgo.NewOffset().At(start)}}),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return err
	}

	defer rc.Close()
	g.consumed.Store(start - 1)
	defer g.lst.running()()
	g.ready.Store(true)
	g.kafkaOK.Store(true)
	go g.watchKafka(ctx, cl)
	g.log.Info("gateway ready", "reply_topic", topic, "reply_partition", g.part, "start_offset", start)
	defer g.ready.Store(false)
	for {
		fetches := rc.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			g.log.Warn("fetching replies", "topic", t, "partition", p, "err", err)
		})
		var last int64 = -1
		fetches.EachRecord(func(r *kgo.Record) {
			last = r.Offset
			if string(r.Key) != g.cfg.ID {
				if notify.IsBroadcastKey(string(r.Key)) {
					// A change every gateway delivers to its streams (listen.go).
					if rep, err := g.reg.DecodeReply(r.Value); err == nil {
						g.broadcast(rep)
					}
				}
				return // another gateway shares this partition
			}
			rep, err := g.reg.DecodeReply(r.Value)
			if err != nil {
				g.log.Error("dropping undecodable reply", "offset", r.Offset, "err", err)
				return
			}
			g.dispatch(delivery{rep: rep, offset: r.Offset})
		})
		if last >= 0 {
			g.consumed.Store(last)
			fetches.EachPartition(func(p kgo.FetchTopicPartition) {
				g.cfg.Metrics.ReplyLag(p.HighWatermark - last - 1)
			})
		}
	}
}

// waiter is one HTTP request waiting for its replies.
type waiter struct {
	ch chan delivery
}

func (g *Gateway) register(token string) *waiter {
	w := &waiter{ch: make(chan delivery, 64)}
	g.mu.Lock()
	g.pending[token] = w
	g.mu.Unlock()
	return w
}

func (g *Gateway) unregister(token string) {
	g.mu.Lock()
	delete(g.pending, token)
	g.mu.Unlock()
}

// delivery is a reply with its position in the reply partition, which
// becomes its SSE event id.
type delivery struct {
	rep    *schemas.ReplyEvent
	offset int64
}

func (g *Gateway) dispatch(d delivery) {
	rep := d.rep
	g.mu.Lock()
	w := g.pending[rep.ReplyToken]
	g.mu.Unlock()
	if w == nil {
		return // the client went away, or a reply for a previous incarnation
	}
	select {
	case w.ch <- d:
	default:
		// A client that does not read its stream must not stall the reply
		// partition for everyone else; notifications are dropped, and the
		// final response still arrives because the buffer only fills with
		// notifications the client is not consuming.
		g.log.Warn("reply buffer full, dropping notification", "event", rep.EventID)
	}
}

// produce writes a request event and waits for the broker's acknowledgement
// (acks=all): once it returns nil, the request survives any gateway crash.
func (g *Gateway) produce(ctx context.Context, ev *schemas.RequestEvent, key string) error {
	val, err := g.reg.EncodeRequest(ev)
	if err != nil {
		return fmt.Errorf("encoding request event: %w", err)
	}
	start := time.Now()
	// A broker that accepted the connection and then stopped answering
	// (paused, overloaded) must not hold the request forever: past this,
	// the client is told to retry with the same id, which is safe whether
	// or not the record made it.
	ctx, cancel := context.WithTimeout(ctx, produceTimeout)
	defer cancel()
	err = g.cl.Load().ProduceSync(ctx, &kgo.Record{Topic: g.cfg.Streams.Topics.Requests(), Key: []byte(key), Value: val}).FirstErr()
	g.cfg.Metrics.Produce(time.Since(start), err)
	if err != nil {
		return fmt.Errorf("producing request event: %w", err)
	}
	return nil
}

// produceTimeout bounds the wait for Kafka to acknowledge a request event.
const produceTimeout = 20 * time.Second

type nopMetrics struct{}

func (nopMetrics) Request(string, string, time.Duration) {}
func (nopMetrics) Produce(time.Duration, error)          {}
func (nopMetrics) ReplyLag(int64)                        {}

var errNotReady = errors.New("gateway not ready")

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
