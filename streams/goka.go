package streams

import (
	"log/slog"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	metrics "github.com/rcrowley/go-metrics"
)

func init() {
	// sarama records go-metrics histograms on every request; nothing reads
	// them (Prometheus metrics come from our own seams), and they cost a
	// few percent of CPU.
	metrics.UseNilMetrics = true
}

func copartitioning() sarama.BalanceStrategy { return goka.CopartitioningStrategy }

// GokaOptions returns the processor options every mcpstream goka processor
// uses: consumers configured by SaramaConfig, producers on franz-go
// (GokaProducerBuilder), a topic manager with the configured replication
// (goka's default of 2 fails on the embedded broker), and the shared hasher.
func GokaOptions(cfg Config, clientID string, log *slog.Logger) []goka.ProcessorOption {
	sc := SaramaConfig(clientID)
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication = int(cfg.Replication)
	tm.Stream.Replication = int(cfg.Replication)
	tm.MismatchBehavior = goka.TMConfigMismatchBehaviorFail
	return []goka.ProcessorOption{
		goka.WithClientID(clientID),
		goka.WithHasher(Hasher),
		goka.WithProducerBuilder(GokaProducerBuilder(cfg, log)),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(sc)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(sc, tm)),
	}
}
