package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Topics names every topic of one mcpstream deployment. All names derive
// from Prefix so that several deployments can share a cluster.
type Topics struct {
	Prefix string
}

// DefaultPrefix is used when Topics.Prefix is empty.
const DefaultPrefix = "mcpstream"

func (t Topics) p() string {
	if t.Prefix == "" {
		return DefaultPrefix
	}
	return t.Prefix
}

// Requests is the request log: every MCP message a client sent, keyed by
// session id (stateful) or event id (stateless), so one session's messages
// stay in order. Input of the sessions group.
func (t Topics) Requests() string { return t.p() + ".requests" }

// ToolCalls carries accepted tools/call requests, keyed by event id. Input
// of the toolcalls group.
func (t Topics) ToolCalls() string { return t.p() + ".toolcalls" }

// ToolResults carries the outcome of every completed call, keyed by event
// id, written by the toolcalls group once per call (the winning executor
// result, or the platform's -31003/-31004 answer): the audit trail that
// projections read.
func (t Topics) ToolResults() string { return t.p() + ".tool-results" }

// ToolControls carries, keyed by event id and co-partitioned with
// ToolCalls, everything executors and clients say about a running call:
// claims, results, orphan reports, releases, cancellations and task
// queries. One topic keeps them in one order per call.
func (t Topics) ToolControls() string { return t.p() + ".tool-controls" }

// ExecutorCommands carries the toolcalls processor's grants, drops and
// cancellations, keyed by executor id: each executor reads the one partition
// its id hashes to, as gateways do with Replies.
func (t Topics) ExecutorCommands() string { return t.p() + ".executor-commands" }

// Executors is the compacted liveness table of executors (beats with the
// calls each holds), keyed by executor id; every executor reads all of it.
func (t Topics) Executors() string { return t.p() + ".executors" }

// Jobs carries tool calls for executors, keyed by event id.
func (t Topics) Jobs() string { return t.p() + ".jobs" }

// Replies carries messages for gateways, keyed by gateway id.
func (t Topics) Replies() string { return t.p() + ".replies" }

// SessionsGroup is the goka group owning the session table.
func (t Topics) SessionsGroup() string { return t.p() + "-sessions" }

// ToolCallsGroup is the goka group owning the tool-call table.
func (t Topics) ToolCallsGroup() string { return t.p() + "-toolcalls" }

// ExecutorsGroup is the consumer group of executors on Jobs.
func (t Topics) ExecutorsGroup() string { return t.p() + "-executors" }

// Table is goka's name for a group's changelog topic.
func Table(group string) string { return group + "-table" }

// Spec is the layout of one topic.
type Spec struct {
	Name      string
	Compacted bool
}

// Specs lists every topic the platform needs, streams and tables alike.
// Every topic has the same partition count: goka requires co-partitioned
// inputs and tables, and equal counts keep the reply partition of a gateway
// computable from its id alone.
func (t Topics) Specs() []Spec {
	return []Spec{
		{Name: t.Requests()},
		{Name: t.ToolCalls()},
		{Name: t.ToolResults()},
		{Name: t.ToolControls()},
		{Name: t.Jobs()},
		{Name: t.Replies()},
		{Name: t.ExecutorCommands()},
		{Name: t.Executors(), Compacted: true},
		{Name: Table(t.SessionsGroup()), Compacted: true},
		{Name: Table(t.ToolCallsGroup()), Compacted: true},
	}
}

// ErrPartitionMismatch is returned when an existing topic has another
// partition count than configured: keys would land elsewhere than the
// tables expect, silently.
var ErrPartitionMismatch = errors.New("topic partition count differs from configuration")

// EnsureTopics creates missing topics and verifies existing ones have the
// configured partition count, with DefaultMaxMessageBytes.
func EnsureTopics(ctx context.Context, adm *kadm.Client, t Topics, partitions int32, replication int16) error {
	return EnsureTopicsConfig(ctx, adm, Config{Topics: t, Partitions: partitions, Replication: replication})
}

// EnsureTopicsConfig creates missing topics, verifies existing ones have the
// configured partition count, and makes every topic accept records of
// cfg.MaxMessageBytes (a record the broker refuses would stop a processor
// on every replay of the event that caused it).
func EnsureTopicsConfig(ctx context.Context, adm *kadm.Client, c Config) error {
	c = c.WithDefaults()
	t, partitions, replication := c.Topics, c.Partitions, c.Replication
	maxBytes := kadm.StringPtr(strconv.Itoa(int(c.MaxMessageBytes)))
	if err := ensureTopics(ctx, adm, t, partitions, replication, maxBytes); err != nil {
		return err
	}
	names := make([]string, 0, len(t.Specs()))
	for _, s := range t.Specs() {
		names = append(names, s.Name)
	}
	resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: maxBytes}}, names...)
	if err != nil {
		return fmt.Errorf("setting max.message.bytes: %w", err)
	}
	for _, r := range resp {
		if r.Err != nil {
			return fmt.Errorf("setting max.message.bytes of %s: %w", r.Name, r.Err)
		}
	}
	return nil
}

func ensureTopics(ctx context.Context, adm *kadm.Client, t Topics, partitions int32, replication int16, maxBytes *string) error {
	specs := t.Specs()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("listing topics: %w", err)
	}
	for _, s := range specs {
		if d, ok := details[s.Name]; ok && d.Err == nil && len(d.Partitions) > 0 {
			if got := int32(len(d.Partitions)); got != partitions {
				return fmt.Errorf("topic %s has %d partitions, want %d: %w", s.Name, got, partitions, ErrPartitionMismatch)
			}
			continue
		}
		cfg := map[string]*string{"max.message.bytes": maxBytes}
		if s.Compacted {
			cfg["cleanup.policy"] = kadm.StringPtr("compact")
		} else {
			// A week of request log is what replay and resumption can reach
			// back to; operators raise it for longer audits.
			cfg["retention.ms"] = kadm.StringPtr(strconv.Itoa(7 * 24 * 3600 * 1000))
		}
		resp, err := adm.CreateTopic(ctx, partitions, replication, cfg, s.Name)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			// Another role created it meanwhile. franz-go caches metadata
			// answers for MetadataMinAge, so the "unknown topic" we saw may
			// be served again for a moment: retry until it shows.
			if err := checkPartitions(ctx, adm, s.Name, partitions); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("creating topic %s: %w", s.Name, err)
		}
	}
	return nil
}

func checkPartitions(ctx context.Context, adm *kadm.Client, topic string, partitions int32) error {
	var last error
	for attempt := 0; attempt < 40; attempt++ {
		d, err := adm.ListTopics(ctx, topic)
		switch {
		case err != nil:
			last = err
		case d[topic].Err != nil:
			last = d[topic].Err
		default:
			if got := int32(len(d[topic].Partitions)); got != partitions {
				return fmt.Errorf("topic %s has %d partitions, want %d: %w", topic, got, partitions, ErrPartitionMismatch)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("describing topic %s: %w", topic, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("describing topic %s: %w", topic, last)
}
