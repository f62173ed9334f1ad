package executor

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mcpstream/mcpstream/streams"
)

// shareFetchKey is the ShareFetch API (KIP-932); a broker that lists it
// in ApiVersions can serve share groups.
const shareFetchKey = 78

// configResourceGroup is the GROUP config resource type (KIP-848/932).
const configResourceGroup = kmsg.ConfigResourceType(32)

// start builds the clients, picks the mode, and reads the executors table
// up to its end, so that conflicts are judged on every beat written before.
func (e *Executor) start(ctx context.Context) error {
	t := e.cfg.Streams.Topics
	cmdPart := streams.PartitionFor(e.cfg.ID, e.cfg.Streams.Partitions)
	probe, err := streams.NewClient(e.cfg.Streams, "executor-"+e.cfg.ID+"-probe", e.cfg.Logger)
	if err != nil {
		return fmt.Errorf("executor %s: building probe client: %w", e.cfg.ID, err)
	}
	mode := e.cfg.Mode
	if mode == ModeAuto {
		mode = ModeGroup
		if ok, err := supportsShare(ctx, probe); err != nil {
			probe.Close()
			return fmt.Errorf("executor %s: asking the broker for its APIs: %w", e.cfg.ID, err)
		} else if ok {
			mode = ModeShare
		}
	}
	if mode == ModeShare {
		if err := setShareEarliest(ctx, probe, t.ExecutorsGroup()); err != nil {
			probe.Close()
			return fmt.Errorf("executor %s: configuring share group: %w", e.cfg.ID, err)
		}
	}
	// Commands from now on are what matter: everything older is for past
	// incarnations. Starting at the listed end rather than "latest" at the
	// first fetch closes the gap where a grant could land in between.
	ends, err := listEnds(ctx, probe, t.ExecutorCommands())
	probe.Close()
	if err != nil {
		return fmt.Errorf("executor %s: listing command offsets: %w", e.cfg.ID, err)
	}
	e.mu.Lock()
	e.mode = mode
	e.mu.Unlock()

	var jobOpts []kgo.Opt
	if mode == ModeShare {
		jobOpts = []kgo.Opt{kgo.ShareGroup(t.ExecutorsGroup()), kgo.ConsumeTopics(t.Jobs()),
			kgo.ShareMaxRecords(int32(e.cfg.Concurrency)), kgo.ShareMaxRecordsStrict(), kgo.FetchMaxWait(250 * time.Millisecond)}
	} else {
		jobOpts = []kgo.Opt{kgo.ConsumerGroup(t.ExecutorsGroup()), kgo.ConsumeTopics(t.Jobs()),
			kgo.AutoCommitMarks(), kgo.AutoCommitInterval(200 * time.Millisecond),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(250 * time.Millisecond),
			kgo.SessionTimeout(12 * time.Second), kgo.HeartbeatInterval(500 * time.Millisecond),
			kgo.OnPartitionsRevoked(e.commitMarked), kgo.OnPartitionsLost(e.commitMarked)}
	}
	if e.cl, err = streams.NewClient(e.cfg.Streams, "executor-"+e.cfg.ID, e.cfg.Logger, jobOpts...); err != nil {
		return fmt.Errorf("executor %s: building jobs client: %w", e.cfg.ID, err)
	}
	if e.cmds, err = streams.NewClient(e.cfg.Streams, "executor-"+e.cfg.ID+"-commands", e.cfg.Logger,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{t.ExecutorCommands(): {cmdPart: kgo.NewOffset().At(ends[cmdPart])}}),
		kgo.FetchMaxWait(100*time.Millisecond)); err != nil {
		e.cl.Close()
		return fmt.Errorf("executor %s: building commands client: %w", e.cfg.ID, err)
	}
	if e.tbl, err = streams.NewClient(e.cfg.Streams, "executor-"+e.cfg.ID+"-table", e.cfg.Logger,
		kgo.ConsumeTopics(t.Executors()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond)); err != nil {
		e.cl.Close()
		e.cmds.Close()
		return fmt.Errorf("executor %s: building table client: %w", e.cfg.ID, err)
	}
	ready := make(chan struct{})
	var once sync.Once
	// The monitor outlives ctx (a stopping executor still beats and
	// settles its calls) and is stopped by Run, before the clients close.
	mctx, stopMonitor := context.WithCancel(context.WithoutCancel(ctx))
	e.stopMonitor, e.monitorDone = stopMonitor, make(chan struct{})
	go func() {
		defer close(e.monitorDone)
		e.monitor(mctx, func() { once.Do(func() { close(ready) }) })
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		return nil
	}
	e.log.Info("executor running", "mode", mode, "commands_partition", cmdPart, "lease", e.cfg.Lease)
	return nil
}

// consume polls jobs while there is room to run them. A batch is
// acknowledged only when each of its records may be (see handle), and the
// next poll waits for that: share groups accept whatever the previous poll
// left unacknowledged.
func (e *Executor) consume(ctx context.Context) error {
	share := e.Mode() == ModeShare
	for ctx.Err() == nil {
		// Poll no more than there are free slots: what an executor fetches
		// and cannot run would wait in its buffer while others sit idle.
		free := cap(e.sem) - len(e.sem)
		if free <= 0 {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		fetches := e.cl.PollRecords(ctx, free)
		if ctx.Err() != nil {
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			e.log.Warn("fetching jobs", "topic", t, "partition", p, "err", err)
		})
		recs := fetches.Records()
		var calls []*call
		for _, rec := range recs {
			c, err := e.admit(ctx, rec)
			if err != nil {
				break
			}
			if c != nil {
				calls = append(calls, c)
			}
		}
		// The batch is claimed before anything newer is polled: a consumer
		// group commits offsets, and committing a later record would skip
		// one whose claim never made it.
		for {
			err := e.claimBatch(ctx, calls)
			if err == nil || ctx.Err() != nil {
				break
			}
			e.log.Warn("claiming jobs, will retry", "jobs", len(calls), "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		if ctx.Err() != nil {
			break // unacknowledged: delivered again to whoever is next
		}
		for _, rec := range recs {
			if share {
				e.cl.MarkAcks(kgo.AckAccept, rec)
			} else {
				e.cl.MarkCommitRecords(rec)
			}
		}
	}
	if share {
		// Records this process could not settle go back to the group now
		// rather than when their locks time out.
		e.cl.MarkAcks(kgo.AckRelease)
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = e.cl.FlushAcks(cctx)
		cancel()
	} else {
		e.commitMarked(context.Background(), e.cl, nil)
	}
	return nil
}

func (e *Executor) commitMarked(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		e.log.Warn("committing job offsets", "err", err)
	}
}

func supportsShare(ctx context.Context, cl *kgo.Client) (bool, error) {
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName = "mcpstream"
	req.ClientSoftwareVersion = "1"
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := req.RequestWith(cctx, cl)
	if err != nil {
		return false, err
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == shareFetchKey {
			return true, nil
		}
	}
	return false, nil
}

// setShareEarliest makes the share group start at the beginning of the jobs
// topic: by default a new share group sees only records produced after it
// first fetched, and jobs accepted before the first executor started would
// never run.
func setShareEarliest(ctx context.Context, cl *kgo.Client, group string) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = configResourceGroup
	res.ResourceName = group
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name = "share.auto.offset.reset"
	c.Op = kmsg.IncrementalAlterConfigOpSet
	v := "earliest"
	c.Value = &v
	res.Configs = append(res.Configs, c)
	req.Resources = append(req.Resources, res)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := req.RequestWith(cctx, cl)
	if err != nil {
		return err
	}
	for _, r := range resp.Resources {
		if r.ErrorCode != 0 {
			msg := ""
			if r.ErrorMessage != nil {
				msg = *r.ErrorMessage
			}
			return fmt.Errorf("setting share.auto.offset.reset on %s: error code %d %s", group, r.ErrorCode, msg)
		}
	}
	return nil
}

// listEnds returns the end offset of every partition of topic.
func listEnds(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	listed, err := kadm.NewClient(cl).ListEndOffsets(cctx, topic)
	if err != nil {
		return nil, err
	}
	if err := listed.Error(); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	if len(out) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", topic)
	}
	return out, nil
}
