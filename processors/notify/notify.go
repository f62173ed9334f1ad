package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

// BroadcastPrefix starts every broadcast key. Gateway ids start with "gw-",
// so a broadcast key never names a gateway.
const BroadcastPrefix = "*"

// Notification methods carried by broadcasts.
const (
	ToolsListChanged     = "notifications/tools/list_changed"
	PromptsListChanged   = "notifications/prompts/list_changed"
	ResourcesListChanged = "notifications/resources/list_changed"
	ResourceUpdated      = "notifications/resources/updated"
)

// IsBroadcastKey reports whether a reply key is a broadcast one.
func IsBroadcastKey(key string) bool { return strings.HasPrefix(key, BroadcastPrefix) }

// Keys returns, for each partition of a topic of n partitions, a broadcast
// key that the shared partitioner puts in it.
func Keys(n int32) []string {
	keys := make([]string, n)
	found := int32(0)
	// FNV-1a spreads "*0", "*1", ... evenly; a few hundred candidates cover
	// any realistic partition count. The bound keeps a pathological n from
	// looping forever.
	for i := 0; found < n && i < int(n)*1000; i++ {
		k := BroadcastPrefix + strconv.Itoa(i)
		p := streams.PartitionFor(k, n)
		if keys[p] == "" {
			keys[p] = k
			found++
		}
	}
	return keys
}

// Message is the JSON-RPC notification of a method with params (nil: none).
func Message(method string, params any) ([]byte, error) {
	m := map[string]any{"jsonrpc": "2.0", "method": method}
	if params != nil {
		m["params"] = params
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", method, err)
	}
	return b, nil
}

// Publisher writes broadcasts.
type Publisher struct {
	cl    *kgo.Client
	reg   *schemas.Registry
	topic string
	keys  []string
	log   *slog.Logger
}

// NewPublisher connects lazily to the cluster of cfg.
func NewPublisher(reg *schemas.Registry, cfg streams.Config, clientID string, log *slog.Logger) (*Publisher, error) {
	cfg = cfg.WithDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl, err := streams.NewClient(cfg, clientID, log)
	if err != nil {
		return nil, fmt.Errorf("notify publisher: %w", err)
	}
	keys := Keys(cfg.Partitions)
	for p, k := range keys {
		if k == "" {
			cl.Close()
			return nil, fmt.Errorf("notify publisher: no broadcast key for partition %d of %d", p, cfg.Partitions)
		}
	}
	return &Publisher{cl: cl, reg: reg, topic: cfg.Topics.Replies(), keys: keys, log: log}, nil
}

// Close releases the client.
func (p *Publisher) Close() { p.cl.Close() }

// Publish writes one notification to every gateway and returns once the
// broker acknowledged every copy.
func (p *Publisher) Publish(ctx context.Context, method string, params any) error {
	msg, err := Message(method, params)
	if err != nil {
		return err
	}
	id := streams.RandomEventID()
	recs := make([]*kgo.Record, 0, len(p.keys))
	for _, k := range p.keys {
		val, err := p.reg.EncodeReply(&schemas.ReplyEvent{Gateway: k, EventID: id, Kind: schemas.ReplyNotification,
			Message: msg, ProducedAt: time.Now()})
		if err != nil {
			return fmt.Errorf("encoding broadcast %s: %w", method, err)
		}
		recs = append(recs, &kgo.Record{Topic: p.topic, Key: []byte(k), Value: val})
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("publishing %s: %w", method, err)
	}
	p.log.Debug("broadcast published", "method", method, "event", id)
	return nil
}

// ToolsChanged tells every listener that the tool list changed.
func (p *Publisher) ToolsChanged(ctx context.Context) error {
	return p.Publish(ctx, ToolsListChanged, nil)
}

// PromptsChanged tells every listener that the prompt list changed.
func (p *Publisher) PromptsChanged(ctx context.Context) error {
	return p.Publish(ctx, PromptsListChanged, nil)
}

// ResourceChanged tells the subscribers of uri that it changed.
func (p *Publisher) ResourceChanged(ctx context.Context, uri string) error {
	return p.Publish(ctx, ResourceUpdated, map[string]string{"uri": uri})
}

// CheckSubscription is the internal notification a gateway sends, keyed by
// session, for each 2025-11-25 GET stream it holds when a resource changed
// (params {"uri": ...}): the sessions processor answers on the stream only
// if the session subscribed to the URI. Clients cannot use it to learn
// anything: the answer goes to the sender's own stream and session.
const CheckSubscription = "mcpstream/resources/checkSubscription"

// StreamOpened is the internal notification a gateway sends when a client
// opens a 2025-11-25 GET stream: the processor accepts it (202) for a live
// session of the same principal and 404s otherwise.
const StreamOpened = "mcpstream/stream/opened"

// Internal reports whether a method is one of the gateways' own
// notifications to the sessions processor, which clients may not send.
func Internal(method string) bool { return strings.HasPrefix(method, "mcpstream/") }
