// Package admin answers operators' questions about the log: which topics
// exist with how many partitions and which cleanup policy (Topics, which
// can also create the missing ones), and how far behind each consumer is
// (Lag: the processor and executor groups from Kafka's committed offsets,
// the projector from the offsets it commits in PostgreSQL).
//
//	infos, err := admin.Topics(ctx, adm, streamsCfg, true)
//	admin.WriteTopics(os.Stdout, infos)
package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/twmb/franz-go/pkg/kadm"
)

// TopicInfo describes one platform topic.
type TopicInfo struct {
	Name        string
	Exists      bool
	Partitions  int
	Replication int
	// Compacted is what the platform expects (streams.Spec); Cleanup is
	// what the broker says (cleanup.policy).
	Compacted bool
	Cleanup   string
	Retention string // retention.ms; "" when the broker does not say
	// Problem is "" when the topic is as the configuration wants it.
	Problem string
}

// Topics describes every topic of the deployment, creating the missing
// ones first when create is set (streams.EnsureTopics: it refuses a topic
// whose partition count differs from the configuration).
func Topics(ctx context.Context, adm *kadm.Client, cfg streams.Config, create bool) ([]TopicInfo, error) {
	cfg = cfg.WithDefaults()
	if create {
		if err := streams.EnsureTopicsConfig(ctx, adm, cfg); err != nil {
			return nil, fmt.Errorf("creating topics: %w", err)
		}
	}
	specs := cfg.Topics.Specs()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	var details kadm.TopicDetails
	for attempt := 0; ; attempt++ {
		var err error
		if details, err = adm.ListTopics(ctx, names...); err != nil {
			return nil, fmt.Errorf("listing topics: %w", err)
		}
		missing := false
		for _, n := range names {
			if d, ok := details[n]; !ok || d.Err != nil {
				missing = true
			}
		}
		// franz-go serves a cached "unknown topic" for MetadataMinAge
		// after a create: wait for the topics just made to show.
		if !missing || !create || attempt >= 40 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	var existing []string
	for _, n := range names {
		if d, ok := details[n]; ok && d.Err == nil {
			existing = append(existing, n)
		}
	}
	configs := map[string]map[string]string{}
	if len(existing) > 0 {
		rcs, err := adm.DescribeTopicConfigs(ctx, existing...)
		if err != nil && len(rcs) == 0 {
			return nil, fmt.Errorf("describing topic configs: %w", err)
		}
		for _, rc := range rcs {
			m := map[string]string{}
			for _, c := range rc.Configs {
				if c.Value != nil {
					m[c.Key] = *c.Value
				}
			}
			configs[rc.Name] = m
		}
	}
	var out []TopicInfo
	for _, s := range specs {
		info := TopicInfo{Name: s.Name, Compacted: s.Compacted}
		d, ok := details[s.Name]
		if !ok || d.Err != nil {
			info.Problem = "missing (mcpstream topics --create makes it)"
			out = append(out, info)
			continue
		}
		info.Exists = true
		info.Partitions = len(d.Partitions)
		for _, p := range d.Partitions {
			info.Replication = len(p.Replicas)
			break
		}
		info.Cleanup = configs[s.Name]["cleanup.policy"]
		if info.Cleanup == "" {
			info.Cleanup = "delete"
		}
		info.Retention = configs[s.Name]["retention.ms"]
		var problems []string
		if int32(info.Partitions) != cfg.Partitions {
			problems = append(problems, fmt.Sprintf("%d partitions, configured %d", info.Partitions, cfg.Partitions))
		}
		if s.Compacted != strings.Contains(info.Cleanup, "compact") {
			problems = append(problems, fmt.Sprintf("cleanup.policy %s, want compaction=%t", info.Cleanup, s.Compacted))
		}
		info.Problem = strings.Join(problems, "; ")
		out = append(out, info)
	}
	return out, nil
}

// WriteTopics prints infos as a table.
func WriteTopics(w io.Writer, infos []TopicInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION\tCLEANUP\tRETENTION.MS\tSTATUS")
	for _, i := range infos {
		status := "ok"
		if i.Problem != "" {
			status = i.Problem
		}
		if !i.Exists {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%s\n", i.Name, status)
			continue
		}
		ret := i.Retention
		if ret == "" {
			ret = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", i.Name, i.Partitions, i.Replication, i.Cleanup, ret, status)
	}
	return tw.Flush()
}

// Groups are the consumer groups of a deployment whose offsets live in
// Kafka: the goka processors and the executors (from streams.Topics), and
// the projector's advisory commits.
func Groups(t streams.Topics) []string {
	return []string{t.SessionsGroup(), t.ToolCallsGroup(), t.ExecutorsGroup(), projections.GroupName(t)}
}

// LagRow is how far one consumer is behind in one partition.
type LagRow struct {
	Group     string
	Source    string // "kafka" (committed group offsets) or "postgres" (projector offsets)
	State     string // the group's state (Stable, Empty, ...); "" for postgres
	Topic     string
	Partition int32
	Committed int64 // -1: nothing committed yet
	End       int64
	Lag       int64
	Member    string // the member consuming the partition, if any
	Err       error
}

// Lag reports the lag of each group per partition from Kafka.
func Lag(ctx context.Context, adm *kadm.Client, groups ...string) ([]LagRow, error) {
	lags, err := adm.Lag(ctx, groups...)
	if err != nil && len(lags) == 0 {
		return nil, fmt.Errorf("describing group lag: %w", err)
	}
	var out []LagRow
	for _, g := range groups {
		l, ok := lags[g]
		if !ok {
			continue
		}
		if e := l.Error(); e != nil {
			out = append(out, LagRow{Group: g, Source: "kafka", State: l.State, Partition: -1, Committed: -1, Err: e})
			continue
		}
		if len(l.Lag) == 0 {
			out = append(out, LagRow{Group: g, Source: "kafka", State: l.State, Partition: -1, Committed: -1,
				Err: errors.New("no committed offsets")})
		}
		for topic, ps := range l.Lag {
			for p, m := range ps {
				r := LagRow{Group: g, Source: "kafka", State: l.State, Topic: topic, Partition: p,
					Committed: m.Commit.At, End: m.End.Offset, Lag: m.Lag, Err: m.Err}
				if m.Member != nil {
					r.Member = m.Member.ClientID
				}
				out = append(out, r)
			}
		}
	}
	sortRows(out)
	return out, nil
}

// ProjectorLag reports the projector's lag from the offsets it commits in
// PostgreSQL with its rows: the authoritative ones.
func ProjectorLag(ctx context.Context, adm *kadm.Client, store projections.Store, t streams.Topics) ([]LagRow, error) {
	var out []LagRow
	for _, p := range projections.Live {
		offs, err := store.Offsets(ctx, p, "")
		if err != nil {
			return nil, err
		}
		ends, err := adm.ListEndOffsets(ctx, projections.Sources(t, p)...)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("listing end offsets: %w", err)
		}
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := offs[projections.TopicPartition{Topic: o.Topic, Partition: o.Partition}]
			r := LagRow{Group: "projector:" + p, Source: "postgres", Topic: o.Topic, Partition: o.Partition, Committed: -1, End: o.Offset}
			if ok {
				r.Committed, r.Lag = c, max(0, o.Offset-c)
			} else {
				// Nothing applied yet: everything from the log start is ahead
				// (counted from 0, the start offset is not asked for).
				r.Lag = o.Offset
			}
			out = append(out, r)
		})
	}
	sortRows(out)
	return out, nil
}

func sortRows(rs []LagRow) {
	slices.SortFunc(rs, func(a, b LagRow) int {
		if c := strings.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
}

// WriteLag prints rows as a table, with a total per group.
func WriteLag(w io.Writer, rows []LagRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSOURCE\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER")
	totals := map[string]int64{}
	var order []string
	for _, r := range rows {
		if _, ok := totals[r.Group]; !ok {
			order = append(order, r.Group)
		}
		if r.Err != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t%v\n", r.Group, r.Source, r.Topic, r.Err)
			totals[r.Group] += 0
			continue
		}
		committed := "-"
		if r.Committed >= 0 {
			committed = fmt.Sprint(r.Committed)
		}
		member := r.Member
		if member == "" {
			member = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\n", r.Group, r.Source, r.Topic, r.Partition, committed, r.End, r.Lag, member)
		totals[r.Group] += r.Lag
	}
	for _, g := range order {
		fmt.Fprintf(tw, "%s\ttotal\t\t\t\t\t%d\t\n", g, totals[g])
	}
	return tw.Flush()
}
