package streams

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// Port to listen on (127.0.0.1). Zero picks a free port.
	Port int
	// DataDir persists the log; empty keeps it in memory only.
	DataDir string
	// SyncWrites fsyncs every produce before acknowledging it. Off by
	// default, like Kafka's own default: acknowledged writes survive a
	// process crash (they are in the page cache) but not a power loss.
	SyncWrites bool
	// CompactEvery runs log compaction on compacted topics (kfake only
	// compacts on request). Zero means one minute.
	CompactEvery time.Duration
	Logger       *slog.Logger
}

// Broker is an in-process Kafka-protocol broker (franz-go's kfake). It has
// one node and no replication: the production path is --brokers pointing at
// a real cluster.
type Broker struct {
	c     *kfake.Cluster
	cfg   BrokerConfig
	addrs []string
}

// NewBroker starts the broker.
func NewBroker(cfg BrokerConfig) (*Broker, error) {
	if cfg.CompactEvery == 0 {
		cfg.CompactEvery = time.Minute
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(cfg.Port),
		kfake.ClusterID("mcpstream"),
		kfake.GroupMinSessionTimeout(time.Second),
		kfake.GroupMaxSessionTimeout(5 * time.Minute),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting embedded broker on port %d: %w", cfg.Port, err)
	}
	return &Broker{c: c, cfg: cfg, addrs: c.ListenAddrs()}, nil
}

// Addrs are the broker's listen addresses, for --brokers.
func (b *Broker) Addrs() []string { return b.addrs }

// Cluster exposes kfake for fault injection in tests.
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Run compacts periodically until ctx is done. It does not close the
// broker: clients in the same process must stop first, or they see their
// broker vanish mid-shutdown. Call Close after them.
func (b *Broker) Run(ctx context.Context) error {
	t := time.NewTicker(b.cfg.CompactEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			b.c.Compact()
		}
	}
}

// Close stops the broker and flushes its data dir. It is safe to call more
// than once.
func (b *Broker) Close() { b.c.Close() }
