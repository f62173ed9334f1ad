package streams

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is what every role needs to reach Kafka.
type Config struct {
	// Brokers are seed addresses. Required.
	Brokers []string
	// Topics names the topics; the zero value uses DefaultPrefix.
	Topics Topics
	// Partitions of every topic. Zero means 12: enough for a dozen
	// processor instances and a spread of gateway reply partitions.
	Partitions int32
	// Replication of created topics. Zero means 1 (the embedded broker has
	// no replication); set 3 on a real cluster.
	Replication int16
	// MaxMessageBytes is the largest record the platform writes; topics are
	// created (or altered) to accept it and producers batch up to it. Zero
	// means DefaultMaxMessageBytes. Kafka's own default (1 MB) is below
	// what one MCP request may legitimately carry.
	MaxMessageBytes int32
}

// DefaultMaxMessageBytes is 8 MiB: room for a 4 MiB request body plus the
// session's capabilities in a tool job, or a 4 MiB tool result in a table
// value.
const DefaultMaxMessageBytes = 8 << 20

// WithDefaults fills zero values.
func (c Config) WithDefaults() Config {
	if c.Partitions == 0 {
		c.Partitions = 12
	}
	if c.Replication == 0 {
		c.Replication = 1
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return c
}

// Validate rejects configurations that cannot work.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("streams config: no brokers")
	}
	if c.Partitions < 1 {
		return fmt.Errorf("streams config: partitions must be >= 1, got %d", c.Partitions)
	}
	return nil
}

// NewClient returns a franz-go client for the platform. It produces with
// acks=all and idempotence (franz-go's defaults, stated here so no one turns
// them off), no linger (a request/reply path pays every millisecond of it),
// and the goka-compatible partitioner. Extra options (consumer settings)
// are appended.
func NewClient(cfg Config, clientID string, log *slog.Logger, opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(Partitioner()),
		kgo.ProducerLinger(0),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.MetadataMinAge(time.Second),
		kgo.RetryTimeout(30 * time.Second),
		// Without a delivery timeout a produce to an unreachable cluster
		// waits forever, and so does the client behind it.
		kgo.RecordDeliveryTimeout(20 * time.Second),
	}
	if cfg.MaxMessageBytes > 0 {
		base = append(base, kgo.ProducerBatchMaxBytes(cfg.MaxMessageBytes))
	}
	if log != nil {
		base = append(base, kgo.WithLogger(kgoLogger{log}))
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("creating kafka client %s: %w", clientID, err)
	}
	return cl, nil
}

// Ping waits until the cluster answers, so roles fail fast and clearly on a
// wrong --brokers instead of hanging in their first produce.
func Ping(ctx context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		err := cl.Ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reaching kafka: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelDebug
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var l slog.Level
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	case kgo.LogLevelInfo:
		l = slog.LevelInfo
	default:
		l = slog.LevelDebug
	}
	k.l.Log(context.Background(), l, msg, append([]any{"component", "kgo"}, keyvals...)...)
}

// SaramaConfig is the configuration goka's producers and consumers get.
// goka's defaults lose data and add latency; each override says why.
func SaramaConfig(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = clientID
	c.Version = sarama.V2_8_0_0 // sarama 1.46 decodes kfake's OffsetFetch v6+ fine
	c.Consumer.Return.Errors = true
	c.Consumer.MaxProcessingTime = time.Second
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Fetch.Min = 1
	c.Consumer.MaxWaitTime = 250 * time.Millisecond
	// Heartbeat well below session timeout, session timeout well above
	// heartbeat + goka's fixed 5 s rebalance pause: at or below that the
	// pausing member is evicted and partitions get owned twice.
	c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 12 * time.Second
	c.Consumer.Group.Rebalance.Timeout = 30 * time.Second
	c.Consumer.Group.Rebalance.Strategy = copartitioning()
	// Durability: goka defaults to acks=1 without idempotence.
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Retry.Max = 20
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	// Latency: goka flushes every 100 ms by default, which a reply waits for.
	// Zero frequency/bytes/messages sends as soon as the previous request is
	// answered, batching whatever accumulated meanwhile.
	c.Producer.Flush.Frequency = 0
	c.Producer.Flush.Bytes = 0
	c.Producer.Flush.Messages = 0
	c.Producer.Compression = sarama.CompressionNone
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Metadata.RefreshFrequency = 30 * time.Second
	return c
}
