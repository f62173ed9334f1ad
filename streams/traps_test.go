package streams

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Each test here pins one trap from shared/notes/facts.md.

// franz-go's default partitioner (murmur2) and goka's (FNV-1a through
// sarama) disagree; a franz-go producer feeding a goka input must use ours.
func TestPartitionerMatchesGoka(t *testing.T) {
	gokaPart := sarama.NewCustomHashPartitioner(goka.DefaultHasher())("t")
	ours := Partitioner().ForTopic("t")
	franzDefault := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	disagreeDefault := 0
	for _, n := range []int32{1, 6, 12, 64} {
		for i := 0; i < 2000; i++ {
			key := fmt.Sprintf("session-%d", i)
			want, err := gokaPart.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, n)
			if err != nil {
				t.Fatal(err)
			}
			if got := int32(ours.Partition(&kgo.Record{Key: []byte(key)}, int(n))); got != want {
				t.Fatalf("key %q n=%d: franz-go partition %d, goka %d", key, n, got, want)
			}
			if got := PartitionFor(key, n); got != want {
				t.Fatalf("PartitionFor(%q, %d) = %d, goka %d", key, n, got, want)
			}
			if int32(franzDefault.Partition(&kgo.Record{Key: []byte(key)}, int(n))) != want {
				disagreeDefault++
			}
		}
	}
	// Proves the test can fail: the default would have been caught.
	if disagreeDefault == 0 {
		t.Fatal("franz-go's default partitioner agreed with goka on every key; the trap test is not testing anything")
	}
}

// goka's defaults (acks=1, no idempotence, 100 ms flush) lose data and add
// latency; its 5 s rebalance pause must fit in the session timeout.
func TestSaramaConfigAvoidsGokaDefaults(t *testing.T) {
	c := SaramaConfig("x")
	if c.Producer.RequiredAcks != sarama.WaitForAll || !c.Producer.Idempotent || c.Net.MaxOpenRequests != 1 {
		t.Errorf("producer durability: acks=%v idempotent=%v maxOpen=%d", c.Producer.RequiredAcks, c.Producer.Idempotent, c.Net.MaxOpenRequests)
	}
	if c.Producer.Flush.Frequency != 0 || c.Producer.Flush.Bytes != 0 || c.Producer.Flush.Messages != 0 {
		t.Errorf("producer flush %+v: a reply would wait for it", c.Producer.Flush)
	}
	const gokaPause = 5 * time.Second
	if c.Consumer.Group.Session.Timeout <= c.Consumer.Group.Heartbeat.Interval+gokaPause+time.Second {
		t.Errorf("session timeout %s too close to heartbeat %s + goka's %s pause", c.Consumer.Group.Session.Timeout, c.Consumer.Group.Heartbeat.Interval, gokaPause)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("sarama rejects the config: %v", err)
	}
}

// kfake has no replication: goka's default replication factor 2 fails on
// it, ours (Config.Replication, default 1) works.
func TestTopicsOnSingleBroker(t *testing.T) {
	b, err := NewBroker(BrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := Config{Brokers: b.Addrs()}.WithDefaults()

	tmDefault, err := goka.NewTopicManager(b.Addrs(), SaramaConfig("tm-default"), goka.NewTopicManagerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tmDefault.Close()
	if err := tmDefault.EnsureTableExists("goka-default-table", 12); err == nil {
		t.Fatal("goka's default replication 2 worked on one broker; the trap is gone or the test is wrong")
	}

	cl, err := NewClient(cfg, "admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	if err := EnsureTopics(ctx, adm, cfg.Topics, cfg.Partitions, cfg.Replication); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	// Idempotent.
	if err := EnsureTopics(ctx, adm, cfg.Topics, cfg.Partitions, cfg.Replication); err != nil {
		t.Fatalf("EnsureTopics again: %v", err)
	}
	// A deployment started with another partition count must not start.
	if err := EnsureTopics(ctx, adm, cfg.Topics, cfg.Partitions+1, cfg.Replication); !errors.Is(err, ErrPartitionMismatch) {
		t.Fatalf("EnsureTopics with other partitions: %v, want ErrPartitionMismatch", err)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, Table(cfg.Topics.SessionsGroup()))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rc := range cfgs {
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil && *c.Value == "compact" {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("session table topic is not compacted")
	}
}

func TestEventIDs(t *testing.T) {
	a := SessionEventID("s1", []byte(`1`))
	if a != SessionEventID("s1", []byte(`1`)) {
		t.Fatal("not deterministic")
	}
	for _, other := range []string{SessionEventID("s1", []byte(`"1"`)), SessionEventID("s2", []byte(`1`)), KeyedEventID("s1", "1")} {
		if other == a {
			t.Fatalf("collision: %s", a)
		}
	}
	// Length-prefixing keeps part boundaries apart.
	if KeyedEventID("ab", "c") == KeyedEventID("a", "bc") {
		t.Fatal("part boundary collision")
	}
	if RandomEventID() == RandomEventID() {
		t.Fatal("random ids repeat")
	}
}

// In a container network the broker must advertise a name other
// containers can reach, not the address it listens on.
func TestBrokerAdvertisesHost(t *testing.T) {
	b, err := NewBroker(BrokerConfig{ListenHost: "127.0.0.1", AdvertiseHost: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr := b.Addrs()[0]
	if len(addr) < 10 || addr[:10] != "localhost:" {
		t.Fatalf("broker address %q, want localhost:PORT", addr)
	}
	cl, err := NewClient(Config{Brokers: b.Addrs()}.WithDefaults(), "adv", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Brokers) != 1 || m.Brokers[0].Host != "localhost" {
		t.Fatalf("metadata brokers %+v, want host localhost", m.Brokers)
	}
}
