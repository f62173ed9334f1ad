package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
)

// ProjectorConfig configures a Projector.
type ProjectorConfig struct {
	Streams streams.Config
	// ClientID names the Kafka client. Empty: "redis-projector".
	ClientID string
	// Group is the consumer group. Empty: "<topic prefix>-redis-projector".
	// A new group replays the table from offset 0.
	Group string
	// IdleTTL is how long a session lives in Redis after its last activity.
	// Zero: 1 h. The sessions processor writes the activity time only every
	// sessions.ActivityResolution (10 s), so a key can expire that much early.
	IdleTTL time.Duration
	// MaxBatch bounds the records of one poll, i.e. one Redis pipeline.
	// Zero: 2000.
	MaxBatch int
	// RetryMin and RetryMax bound the backoff between failed Redis attempts;
	// it doubles from RetryMin to RetryMax. Zero: 100 ms and 5 s.
	RetryMin, RetryMax time.Duration
	// OpTimeout bounds one attempt to write a batch. Zero: 10 s.
	OpTimeout time.Duration
	// MarkerCheck is how often the markers of every owned partition are
	// checked, to notice a Redis that restarted empty while no records came
	// (the write path checks the partitions it writes). Zero: 5 s.
	MarkerCheck time.Duration
	Logger      *slog.Logger
	// Metrics receives counters; nil: none.
	Metrics ProjectorMetrics
}

// Projector consumes the sessions table topic into a Store.
type Projector struct {
	cfg     ProjectorConfig
	reg     *schemas.Registry
	store   *Store
	log     *slog.Logger
	metrics ProjectorMetrics
	cl      *kgo.Client
	topic   string
	group   string

	running atomic.Bool
	redisUp atomic.Bool
	// checkNow asks Run to check every owned partition's marker before
	// polling again: after an assignment, and when Redis came back.
	checkNow atomic.Bool

	mu    sync.Mutex
	owned map[int32]bool
	// downSince is when Redis calls started failing; only the Run
	// goroutine touches it.
	downSince time.Time
}

// NewProjector validates cfg and builds the Kafka client (it connects
// lazily). The projector does not own store: close it after Run returns.
func NewProjector(reg *schemas.Registry, store *Store, cfg ProjectorConfig) (*Projector, error) {
	if reg == nil || store == nil {
		return nil, errors.New("redis projector: schema registry and store are required")
	}
	cfg.Streams = cfg.Streams.WithDefaults()
	if err := cfg.Streams.Validate(); err != nil {
		return nil, err
	}
	prefix := cfg.Streams.Topics.Prefix
	if prefix == "" {
		prefix = streams.DefaultPrefix
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "redis-projector"
	}
	if cfg.Group == "" {
		cfg.Group = prefix + "-redis-projector"
	}
	if cfg.IdleTTL == 0 {
		cfg.IdleTTL = time.Hour
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 2000
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = 5 * time.Second
	}
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = 10 * time.Second
	}
	if cfg.MarkerCheck == 0 {
		cfg.MarkerCheck = 5 * time.Second
	}
	if cfg.MarkerCheck < 0 || cfg.IdleTTL < 0 || cfg.MaxBatch < 0 || cfg.RetryMin < 0 || cfg.RetryMax < cfg.RetryMin || cfg.OpTimeout < 0 {
		return nil, fmt.Errorf("redis projector: invalid config (IdleTTL %v, MaxBatch %d, Retry %v..%v, OpTimeout %v)",
			cfg.IdleTTL, cfg.MaxBatch, cfg.RetryMin, cfg.RetryMax, cfg.OpTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	p := &Projector{cfg: cfg, reg: reg, store: store, metrics: cfg.Metrics,
		topic: streams.Table(cfg.Streams.Topics.SessionsGroup()), group: cfg.Group, owned: map[int32]bool{}}
	p.log = cfg.Logger.With("component", "redis-projector", "group", p.group)
	p.redisUp.Store(true)
	cl, err := streams.NewClient(cfg.Streams, cfg.ClientID, cfg.Logger,
		kgo.ConsumerGroup(p.group),
		kgo.ConsumeTopics(p.topic),
		// Offsets are committed by hand, after Redis acknowledged the
		// records: auto-commit would commit what Redis never got.
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(250*time.Millisecond),
		kgo.SessionTimeout(12*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.OnPartitionsAssigned(p.onAssigned),
		kgo.OnPartitionsRevoked(p.onRevoked),
		kgo.OnPartitionsLost(p.onRevoked),
	)
	if err != nil {
		return nil, err
	}
	p.cl = cl
	return p, nil
}

// Ready reports whether Run is consuming. Redis being down does not make the
// projector unready: it holds its position and catches up (see RedisUp).
func (p *Projector) Ready() bool { return p.running.Load() }

// RedisUp reports whether the last write attempt reached Redis.
func (p *Projector) RedisUp() bool { return p.redisUp.Load() }

// Group is the consumer group in use.
func (p *Projector) Group() string { return p.group }

// Run projects until ctx is done; then it closes the Kafka client. It
// returns nil on cancellation; Redis being down is never an error here.
func (p *Projector) Run(ctx context.Context) error {
	defer p.cl.Close()
	p.running.Store(true)
	defer p.running.Store(false)
	p.log.Info("redis projector started", "topic", p.topic, "idle_ttl", p.cfg.IdleTTL)
	lastCheck := time.Now()
	for {
		if p.checkNow.Swap(false) || time.Since(lastCheck) >= p.cfg.MarkerCheck {
			p.checkMarkers(ctx)
			lastCheck = time.Now()
		}
		// Bounded, so an idle topic still gets its marker checks.
		pctx, cancel := context.WithTimeout(ctx, p.cfg.MarkerCheck)
		fetches := p.cl.PollRecords(pctx, p.cfg.MaxBatch)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("redis projector: kafka client closed")
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			p.log.Warn("fetching session table", "topic", topic, "partition", partition, "err", err)
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			continue
		}
		if err := p.apply(ctx, recs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

type partSpan struct {
	first, last int64
	epoch       int32
}

// apply writes one poll's records and commits their offsets. It returns
// only when Redis took them (or ctx ended): the batch is the position.
func (p *Projector) apply(ctx context.Context, recs []*kgo.Record) error {
	start := time.Now()
	now := start
	spans := map[int32]*partSpan{}
	latest := map[string]int{} // key -> index in writes
	var writes []SessionWrite
	for _, r := range recs {
		s := spans[r.Partition]
		if s == nil {
			s = &partSpan{first: r.Offset}
			spans[r.Partition] = s
		}
		s.last, s.epoch = r.Offset, r.LeaderEpoch
		k := string(r.Key)
		if k == "" {
			p.metrics.RecordSkipped()
			p.log.Error("skipping session table record without key", "partition", r.Partition, "offset", r.Offset)
			continue
		}
		w := SessionWrite{ID: k, Position: r.Offset}
		if r.Value == nil {
			// A tombstone has no activity time. Every older value of the
			// key was written before now, so its idle window ends before
			// now+IdleTTL, when the gone marker may go too.
			w.ExpireAt = now.Add(p.cfg.IdleTTL)
		} else {
			st, err := p.reg.DecodeSession(r.Value)
			if err != nil {
				// An undecodable value can never be projected; waiting for
				// it would stop every other session in the partition. The
				// key keeps its previous value.
				p.metrics.RecordSkipped()
				p.log.Error("skipping undecodable session value", "partition", r.Partition, "offset", r.Offset, "session", k, "err", err)
				continue
			}
			w.State = st
			w.ExpireAt = st.LastActivity.Add(p.cfg.IdleTTL)
		}
		// A key lives in one partition and a partition's records come in
		// offset order: a later value replaces an earlier one of the same
		// batch, which would be overwritten in Redis anyway.
		if i, ok := latest[k]; ok {
			writes[i] = w
		} else {
			latest[k] = len(writes)
			writes = append(writes, w)
		}
	}
	var fresh, check []int32
	for part, s := range spans {
		check = append(check, part)
		if s.first == 0 {
			fresh = append(fresh, part)
		}
	}
	slices.Sort(check)
	slices.Sort(fresh)

	outcomes, lost, err := p.writeWithRetry(ctx, writes, fresh, check)
	if err != nil {
		return err
	}
	stale := 0
	for _, o := range outcomes {
		if o == WriteStale {
			stale++
		}
	}
	var rewound []int32
	if len(lost) > 0 {
		rewound = p.rebuild(ctx, lost)
	}
	offs := map[int32]kgo.EpochOffset{}
	for part, s := range spans {
		if !slices.Contains(rewound, part) {
			offs[part] = kgo.EpochOffset{Epoch: s.epoch, Offset: s.last + 1}
		}
	}
	// Committed even when ctx just ended: the records are in Redis, and
	// committing spares the next owner their replay.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.commit(cctx, offs); err != nil {
		// Not fatal: the records replay after a restart or rebalance, and
		// replaying is harmless.
		p.log.Warn("committing offsets", "err", err)
	}
	p.metrics.BatchApplied(len(recs), len(writes), stale, time.Since(start))
	return nil
}

// writeWithRetry holds the batch until Redis takes it. Retrying forever is
// the point: the committed offset does not move while Redis is away, and
// Kafka keeps everything produced meanwhile.
func (p *Projector) writeWithRetry(ctx context.Context, writes []SessionWrite, fresh, check []int32) ([]int, []int32, error) {
	backoff := p.cfg.RetryMin
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.cfg.OpTimeout)
		outcomes, lost, err := p.store.applyBatch(actx, writes, p.group, fresh, check)
		cancel()
		if err == nil {
			p.redisResult(nil)
			return outcomes, lost, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		p.metrics.RedisFailed()
		if !p.redisResult(err) && attempt%20 == 19 {
			p.log.Warn("redis still unavailable", "down_for", time.Since(p.downSince).Round(time.Second), "err", err)
		}
		// Jitter keeps several projectors from retrying in lockstep.
		d := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(d):
		}
		backoff = min(2*backoff, p.cfg.RetryMax)
	}
}

// redisResult records whether Redis answered, logging transitions only, and
// reports whether this call was one.
func (p *Projector) redisResult(err error) (changed bool) {
	if err == nil {
		p.metrics.RedisUp(true)
		if p.redisUp.Swap(true) {
			return false
		}
		// Redis may have come back empty: partitions not in the next batch
		// must be checked too.
		p.checkNow.Store(true)
		p.log.Info("redis is back; projection catching up", "down_for", time.Since(p.downSince).Round(time.Millisecond))
		return true
	}
	if !p.redisUp.Swap(false) {
		return false
	}
	p.downSince = time.Now()
	p.metrics.RedisUp(false)
	p.log.Warn("redis unavailable; holding position and retrying", "err", err)
	return true
}

// rebuild handles partitions whose marker Redis lost (it restarted empty
// or was flushed). A partition with a committed position is rewound to
// offset 0; the rewind is committed before the marker is set again, so a
// crash in between restarts at 0 with the marker still missing, never past
// data Redis no longer has. A partition without a committed position is
// being read from the start anyway and only gets its marker. It returns the
// partitions it rewound (or tried to): their current batch must not be
// committed.
func (p *Projector) rebuild(ctx context.Context, parts []int32) (rewind []int32) {
	committed := p.cl.CommittedOffsets()[p.topic]
	var mark []int32
	for _, part := range parts {
		if eo, ok := committed[part]; ok && eo.Offset > 0 {
			rewind = append(rewind, part)
		} else {
			mark = append(mark, part)
		}
	}
	if len(rewind) > 0 {
		offs := map[int32]kgo.EpochOffset{}
		for _, part := range rewind {
			offs[part] = kgo.EpochOffset{Epoch: -1, Offset: 0}
		}
		if err := p.commit(ctx, offs); err != nil {
			// The marker stays missing, so the next check or batch of these
			// partitions tries again.
			p.log.Warn("redis lost projected sessions but rewinding failed; will retry", "partitions", rewind, "err", err)
		} else {
			p.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{p.topic: offs})
			mark = append(mark, rewind...)
			for _, part := range rewind {
				p.metrics.PartitionRebuilt(part)
			}
			p.log.Warn("redis lost projected sessions; rebuilding partitions from offset 0", "partitions", rewind)
		}
	}
	if len(mark) == 0 {
		return rewind
	}
	mctx, cancel := context.WithTimeout(ctx, p.cfg.OpTimeout)
	defer cancel()
	if err := p.store.setMarkers(mctx, p.group, mark); err != nil {
		p.log.Warn("setting projector markers", "partitions", mark, "err", err)
	}
	return rewind
}

func (p *Projector) commit(ctx context.Context, offs map[int32]kgo.EpochOffset) error {
	if len(offs) == 0 {
		return nil
	}
	var cerr error
	p.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{p.topic: offs},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, part := range t.Partitions {
					if err := kerr.ErrorForCode(part.ErrorCode); err != nil && cerr == nil {
						cerr = fmt.Errorf("partition %d: %w", part.Partition, err)
					}
				}
			}
		})
	return cerr
}

func (p *Projector) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	p.mu.Lock()
	for _, part := range assigned[p.topic] {
		p.owned[part] = true
	}
	p.mu.Unlock()
	p.checkNow.Store(true)
}

func (p *Projector) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	p.mu.Lock()
	for _, part := range revoked[p.topic] {
		delete(p.owned, part)
	}
	p.mu.Unlock()
}

// checkMarkers rebuilds owned partitions whose marker Redis lost. A failure
// to reach Redis is left to the next check (or the next batch's retries).
func (p *Projector) checkMarkers(ctx context.Context) {
	p.mu.Lock()
	parts := make([]int32, 0, len(p.owned))
	for part := range p.owned {
		parts = append(parts, part)
	}
	p.mu.Unlock()
	if len(parts) == 0 {
		return
	}
	slices.Sort(parts)
	mctx, cancel := context.WithTimeout(ctx, p.cfg.OpTimeout)
	lost, err := p.store.missingMarkers(mctx, p.group, parts)
	cancel()
	if ctx.Err() != nil {
		return
	}
	p.redisResult(err)
	if err != nil {
		return
	}
	if len(lost) > 0 {
		p.rebuild(ctx, lost)
	}
}
