package executor

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// partitionTrack remembers which fetched offsets of one partition are still
// running: jobs finish out of order, and committing past a running job would
// lose it in a crash.
type partitionTrack struct {
	topic    string
	epoch    int32
	inflight map[int64]bool // offset -> done
}

func (e *Executor) track(rec *kgo.Record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	pt := e.pending[rec.Partition]
	if pt == nil {
		pt = &partitionTrack{topic: rec.Topic, inflight: map[int64]bool{}}
		e.pending[rec.Partition] = pt
	}
	pt.epoch = rec.LeaderEpoch
	pt.inflight[rec.Offset] = false
}

func (e *Executor) done(rec *kgo.Record) {
	e.mu.Lock()
	if pt := e.pending[rec.Partition]; pt != nil {
		if _, ok := pt.inflight[rec.Offset]; ok {
			pt.inflight[rec.Offset] = true
		}
	}
	e.mu.Unlock()
}

// commit commits, per partition, the offset after the longest prefix of
// finished jobs.
func (e *Executor) commit(ctx context.Context) {
	e.mu.Lock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for p, pt := range e.pending {
		if next := pt.advance(); next >= 0 {
			if offsets[pt.topic] == nil {
				offsets[pt.topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[pt.topic][p] = kgo.EpochOffset{Epoch: pt.epoch, Offset: next}
		}
	}
	e.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	e.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			e.log.Warn("committing job offsets", "err", err)
		}
	})
}

func (e *Executor) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	// Commit what finished before the partitions go; jobs still running will
	// also be run by the new owner (at-least-once, deduplicated downstream).
	e.commit(ctx)
	e.mu.Lock()
	for _, ps := range revoked {
		for _, p := range ps {
			delete(e.pending, p)
		}
	}
	e.mu.Unlock()
}

// advance forgets the longest prefix of finished offsets and returns the
// offset to commit after it, or -1 when the lowest fetched job still runs.
func (pt *partitionTrack) advance() int64 {
	keys := make([]int64, 0, len(pt.inflight))
	for o := range pt.inflight {
		keys = append(keys, o)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	next := int64(-1)
	for _, o := range keys {
		if !pt.inflight[o] {
			break
		}
		next = o + 1
		delete(pt.inflight, o)
	}
	return next
}
