package streams

import (
	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

func copartitioning() sarama.BalanceStrategy { return goka.CopartitioningStrategy }

// GokaOptions returns the processor options every mcpstream goka processor
// uses: sarama configured by SaramaConfig, topic manager that neither
// creates topics with goka's replication 2 nor guesses (EnsureTopics made
// them), the shared hasher, and the given storage.
func GokaOptions(cfg Config, clientID string) []goka.ProcessorOption {
	sc := SaramaConfig(clientID)
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication = int(cfg.Replication)
	tm.Stream.Replication = int(cfg.Replication)
	tm.MismatchBehavior = goka.TMConfigMismatchBehaviorFail
	return []goka.ProcessorOption{
		goka.WithClientID(clientID),
		goka.WithHasher(Hasher),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(sc)),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(sc)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(sc, tm)),
	}
}
