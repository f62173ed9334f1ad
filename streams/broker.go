package streams

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// Port to listen on. Zero picks a free port.
	Port int
	// ListenHost is the interface to listen on. Empty: 127.0.0.1 (kfake's
	// own choice). Set 0.0.0.0 in a container.
	ListenHost string
	// AdvertiseHost is the host name clients are told to connect to (the
	// broker's metadata). Empty: the listen address. In a container network
	// set the service name, e.g. "broker".
	AdvertiseHost string
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
		// Share-group members are executors: a dead one must lose its
		// partitions in seconds, not the default 45 s, or the jobs assigned
		// to it wait that long (its held records are released at once when
		// its connection drops; its assignment is not).
		kfake.BrokerConfigs(map[string]string{
			"group.share.heartbeat.interval.ms": "500",
			"group.share.session.timeout.ms":    "6000",
		}),
	}
	if cfg.ListenHost != "" || cfg.AdvertiseHost != "" {
		opts = append(opts, kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			host := cfg.ListenHost
			if host == "" {
				host = "127.0.0.1"
			}
			ln, err := net.Listen(network, net.JoinHostPort(host, port))
			if err != nil {
				return nil, err
			}
			if cfg.AdvertiseHost == "" {
				return ln, nil
			}
			_, realPort, _ := net.SplitHostPort(ln.Addr().String())
			return advertised{ln, advertisedAddr(net.JoinHostPort(cfg.AdvertiseHost, realPort))}, nil
		}))
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

// advertised makes kfake put AdvertiseHost in its metadata: kfake tells
// clients the address its listener reports.
type advertised struct {
	net.Listener
	addr advertisedAddr
}

func (a advertised) Addr() net.Addr { return a.addr }

type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }
