package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Metrics observes a projector. Implementations must be safe for
// concurrent use; NopMetrics ignores everything.
type Metrics interface {
	// Applied is called after each committed batch with the records it
	// covered and the time its transaction took.
	Applied(events int, d time.Duration)
	// Failed is called for each failed attempt to apply a batch (the batch
	// is retried).
	Failed(err error)
	// Rejected is called for each record skipped because it did not decode.
	Rejected(topic string)
}

// NopMetrics is the Metrics of a projector given none.
type NopMetrics struct{}

// Applied implements Metrics.
func (NopMetrics) Applied(int, time.Duration) {}

// Failed implements Metrics.
func (NopMetrics) Failed(error) {}

// Rejected implements Metrics.
func (NopMetrics) Rejected(string) {}

// Deps are what a projector works with.
type Deps struct {
	// Store holds the projections. Required.
	Store Store
	// Schemas decodes the topics. Required.
	Schemas *schemas.Registry
	// Logger; nil is silent.
	Logger *slog.Logger
	// Metrics; nil is NopMetrics.
	Metrics Metrics
}

// Config tunes a projector.
type Config struct {
	// Streams reaches Kafka and names the topics. Brokers are required.
	Streams streams.Config
	// Projections to maintain; nil means Live (sessions and tool_calls).
	Projections []string
	// Group is the consumer group that spreads partitions over projector
	// instances. Empty means "<prefix>-projector". The group only assigns
	// partitions: positions are read from PostgreSQL, and what is committed
	// to Kafka is advisory (for `mcpstream lag`).
	Group string
	// ClientID of the Kafka client. Empty means "projector-<host>-<pid>".
	ClientID string
	// BatchSize is the most records one transaction covers. Zero means
	// 10,000: past a few thousand rows per statement the rate stops rising,
	// and a batch must finish well within the group's rebalance timeout.
	BatchSize int
	// RetryBackoff is the first pause after a failed batch, doubling up to
	// 5 s. Zero means 200 ms.
	RetryBackoff time.Duration
	// MaxAttempts per batch before Run gives up. Zero means no limit: a
	// database outage stalls the projection, which catches up afterwards.
	MaxAttempts int
	// CommitEvery is how often the advisory group offsets are committed to
	// Kafka. Zero means 1 s; negative never commits.
	CommitEvery time.Duration
}

// Projector keeps projections up to date with the log.
type Projector struct {
	cfg     Config
	store   Store
	dec     *Decoder
	log     *slog.Logger
	metrics Metrics
}

// New checks deps and cfg; Run does the I/O.
func New(deps Deps, cfg Config) (*Projector, error) {
	cfg.Streams = cfg.Streams.WithDefaults()
	if err := cfg.Streams.Validate(); err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	if deps.Store == nil {
		return nil, errors.New("projector: no store")
	}
	if len(cfg.Projections) == 0 {
		cfg.Projections = Live
	}
	dec, err := NewDecoder(deps.Schemas, cfg.Streams.Topics, cfg.Projections)
	if err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	if cfg.Group == "" {
		cfg.Group = GroupName(cfg.Streams.Topics)
	}
	if cfg.ClientID == "" {
		host, _ := os.Hostname()
		cfg.ClientID = fmt.Sprintf("projector-%s-%d", host, os.Getpid())
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 10000
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 200 * time.Millisecond
	}
	if cfg.CommitEvery == 0 {
		cfg.CommitEvery = time.Second
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = NopMetrics{}
	}
	return &Projector{cfg: cfg, store: deps.Store, dec: dec, metrics: deps.Metrics,
		log: deps.Logger.With("component", "projector", "group", cfg.Group)}, nil
}

// GroupName is the projector's consumer group for a deployment.
func GroupName(t streams.Topics) string {
	p := t.Prefix
	if p == "" {
		p = streams.DefaultPrefix
	}
	return p + "-projector"
}

// Run consumes until ctx is done, then returns nil; it returns an error
// only when it cannot go on (Kafka client, migrations, MaxAttempts).
func (p *Projector) Run(ctx context.Context) error {
	if err := p.store.Migrate(ctx); err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	cl, err := streams.NewClient(p.cfg.Streams, p.cfg.ClientID, p.log,
		kgo.ConsumeTopics(p.dec.Topics()...),
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.DisableAutoCommit(),
		// No rebalance between a poll and the commit of its batch: a
		// partition moves only between transactions. (Overlap would be
		// harmless anyway, the writes being position-guarded, but it would
		// be wasted work.)
		kgo.BlockRebalanceOnPoll(),
		kgo.AdjustFetchOffsetsFn(p.positions),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(time.Second),
	)
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	defer cl.Close()
	defer cl.AllowRebalance() // Close leaves the group: never while blocked
	p.log.Info("projector started", "topics", p.dec.Topics())
	lastCommit := time.Now()
	for {
		fetches := cl.PollRecords(ctx, p.cfg.BatchSize)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("projector: kafka client closed")
		}
		fetches.EachError(func(topic string, part int32, err error) {
			p.log.Warn("fetching", "topic", topic, "partition", part, "err", err)
		})
		recs := fetches.Records()
		if len(recs) > 0 {
			b, rejects := p.dec.Decode(recs, "")
			for _, r := range rejects {
				p.metrics.Rejected(r.Pos.Topic)
				p.log.Warn("skipping undecodable record", "topic", r.Pos.Topic, "partition", r.Pos.Partition, "offset", r.Pos.Offset, "err", r.Err)
			}
			if err := p.apply(ctx, b); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if p.cfg.CommitEvery > 0 && time.Since(lastCommit) >= p.cfg.CommitEvery {
				lastCommit = time.Now()
				if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
					p.log.Debug("advisory offset commit", "err", err)
				}
			}
		}
		cl.AllowRebalance()
	}
}

// apply retries a batch until it commits, ctx ends or MaxAttempts.
func (p *Projector) apply(ctx context.Context, b *Batch) error {
	backoff := p.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := p.store.Apply(ctx, b)
		if err == nil {
			p.metrics.Applied(b.Events, time.Since(start))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.metrics.Failed(err)
		if p.cfg.MaxAttempts > 0 && attempt >= p.cfg.MaxAttempts {
			return fmt.Errorf("projector: giving up after %d attempts: %w", attempt, err)
		}
		p.log.Warn("batch failed; retrying", "attempt", attempt, "events", b.Events, "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// positions replaces the group's Kafka offsets with the ones in
// PostgreSQL, the authoritative ones (written with the rows).
func (p *Projector) positions(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	stored := map[string]map[TopicPartition]int64{}
	for _, proj := range p.cfg.Projections {
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if stored[proj], err = p.store.Offsets(ctx, proj, ""); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
			}
		}
		if err != nil {
			return nil, fmt.Errorf("reading projector offsets: %w", err)
		}
	}
	for topic, parts := range assigned {
		proj := p.dec.Projection(topic)
		for part := range parts {
			if n, ok := stored[proj][TopicPartition{topic, part}]; ok {
				parts[part] = kgo.NewOffset().At(n)
			} else {
				parts[part] = kgo.NewOffset().AtStart()
			}
		}
		p.log.Info("assigned", "topic", topic, "partitions", len(parts))
	}
	return assigned, nil
}
