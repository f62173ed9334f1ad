// Package replay rebuilds projections from the log: into fresh tables next
// to the live ones, from the earliest offset or from a point in time, then
// swaps them in with a rename in one transaction.
//
// A rebuild is a checkpointed run: the fresh tables' offsets are written
// with their rows (the same exactly-once Apply the projector uses), and the
// run is recorded in replay_runs. Interrupt it (Ctrl-C, a crash) and run
// the same command again: it resumes from the checkpoint. A live projector
// may keep running throughout; the swap waits until the rebuild has caught
// up with it (projections.ErrBehind), so no record it applied is missing
// from the new tables.
//
//	res, err := replay.Run(ctx, store, reg, replay.Config{Streams: sc, Out: os.Stdout})
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is one rebuild.
type Config struct {
	// Streams reaches Kafka and names the topics. Brokers are required.
	Streams streams.Config
	// Projections to rebuild together; nil means projections.Live.
	Projections []string
	// From is the time to start from: each partition's first record at or
	// after it. The zero value starts from the earliest offset. A rebuild
	// from a time holds only what the log has from then on.
	From time.Time
	// BatchSize is the most records per batch. Zero means 20,000: larger
	// batches merge more records per row (a call's job and result, a
	// session's successive states) and amortise each statement.
	BatchSize int
	// Every is the interval between progress lines. Zero means 2 s.
	Every time.Duration
	// Out receives progress lines; nil prints none.
	Out io.Writer
	// Logger; nil is silent.
	Logger *slog.Logger
	// ClientID of the Kafka clients. Empty means "replay-<host>-<pid>".
	ClientID string
	// NoSwap leaves the rebuilt tables beside the live ones (compare them
	// with Store.Dump); running again without NoSwap resumes and swaps.
	NoSwap bool
	// SwapAttempts bounds the catch-up rounds against a live projector
	// that keeps moving. Zero means 20.
	SwapAttempts int
	// IdleTimeout: a partition that yields nothing for this long while
	// still below its target (its tail was compacted or expired after the
	// target was read) counts as done. Zero means 10 s.
	IdleTimeout time.Duration
	// Stop, when set, is called after every committed batch with the
	// events done so far; returning true stops the run there, as an
	// interruption would (tests, and operators scripting partial runs).
	Stop func(done int64) bool
}

// Result says what a run did.
type Result struct {
	Generation string
	Resumed    bool
	Swapped    bool
	// Events applied by this run (a resumed run counts only its own).
	Events  int64
	Elapsed time.Duration
}

// ErrStopped is returned when Config.Stop ended the run early; the run is
// checkpointed and resumes on the next Run.
var ErrStopped = errors.New("replay stopped before the end; run again to resume")

type tp = projections.TopicPartition

// Run rebuilds cfg.Projections, or resumes their unfinished rebuild.
func Run(ctx context.Context, store projections.Store, reg *schemas.Registry, cfg Config) (Result, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return Result{}, err
	}
	log := cfg.Logger
	dec, err := projections.NewDecoder(reg, cfg.Streams.Topics, cfg.Projections)
	if err != nil {
		return Result{}, err
	}
	if err := store.Migrate(ctx); err != nil {
		return Result{}, err
	}
	admCl, err := streams.NewClient(cfg.Streams, cfg.ClientID+"-admin", log)
	if err != nil {
		return Result{}, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	gen, start, resumed, err := begin(ctx, store, adm, dec, cfg)
	if err != nil {
		return Result{}, err
	}
	res := Result{Generation: gen, Resumed: resumed}
	pos := map[tp]int64{}
	for _, p := range cfg.Projections {
		m, err := store.Offsets(ctx, p, gen)
		if err != nil {
			return res, err
		}
		for k, v := range m {
			pos[k] = v
		}
	}
	for k, v := range start {
		if _, ok := pos[k]; !ok {
			pos[k] = v
		}
	}
	target, err := endOffsets(ctx, adm, dec.Topics())
	if err != nil {
		return res, err
	}
	verb := "starting"
	if resumed {
		verb = "resuming"
	}
	cfg.printf("replay %s: %s rebuild of %s from %s\n", gen, verb, strings.Join(cfg.Projections, ", "), fromSpec(cfg.From))

	assign := map[string]map[int32]kgo.Offset{}
	for k, v := range pos {
		if assign[k.Topic] == nil {
			assign[k.Topic] = map[int32]kgo.Offset{}
		}
		assign[k.Topic][k.Partition] = kgo.NewOffset().At(v)
	}
	cl, err := streams.NewClient(cfg.Streams, cfg.ClientID, log, kgo.ConsumePartitions(assign),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return res, err
	}
	defer cl.Close()

	pr := &progress{cfg: cfg, gen: gen, start: start, began: time.Now(), last: time.Now()}
	for attempt := 0; ; attempt++ {
		n, err := consume(ctx, cl, store, dec, gen, pos, target, pr, cfg)
		res.Events += n
		res.Elapsed = time.Since(pr.began)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrStopped) {
				pr.print(pos, target, true)
				cfg.printf("replay %s: interrupted; run the same command again to resume\n", gen)
			}
			return res, err
		}
		pr.print(pos, target, true)
		if cfg.NoSwap {
			cfg.printf("replay %s: built; tables left beside the live ones (--no-swap)\n", gen)
			return res, nil
		}
		err = store.Swap(ctx, cfg.Projections, gen)
		var behind *projections.ErrBehind
		if errors.As(err, &behind) && attempt < cfg.SwapAttempts {
			// The live projector is ahead: catch up to where it is and try
			// again. It keeps moving, but each round is shorter.
			for k, v := range behind.Need {
				target[k] = max(target[k], v)
			}
			log.Info("rebuild behind the live projection; catching up", "generation", gen, "partitions", len(behind.Need))
			continue
		}
		if err != nil {
			return res, fmt.Errorf("swapping rebuild %s: %w", gen, err)
		}
		res.Swapped = true
		res.Elapsed = time.Since(pr.began)
		cfg.printf("replay %s: swapped in %s (%d events in %s)\n", gen, strings.Join(cfg.Projections, ", "),
			res.Events, res.Elapsed.Round(time.Millisecond))
		return res, nil
	}
}

// Abort drops the unfinished rebuild of the given projections (nil: Live).
func Abort(ctx context.Context, store projections.Store, which []string) error {
	if len(which) == 0 {
		which = projections.Live
	}
	runs, err := store.Runs(ctx)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if slices.Contains(which, r.Projection) {
			if err := store.AbortRebuild(ctx, []string{r.Projection}, r.Generation); err != nil {
				return err
			}
		}
	}
	return nil
}

func withDefaults(cfg Config) (Config, error) {
	cfg.Streams = cfg.Streams.WithDefaults()
	if err := cfg.Streams.Validate(); err != nil {
		return cfg, fmt.Errorf("replay: %w", err)
	}
	if len(cfg.Projections) == 0 {
		cfg.Projections = projections.Live
	}
	cfg.Projections = slices.Clone(cfg.Projections)
	slices.Sort(cfg.Projections)
	cfg.Projections = slices.Compact(cfg.Projections)
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 20000
	}
	if cfg.Every <= 0 {
		cfg.Every = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ClientID == "" {
		host, _ := os.Hostname()
		cfg.ClientID = fmt.Sprintf("replay-%s-%d", host, os.Getpid())
	}
	if cfg.SwapAttempts <= 0 {
		cfg.SwapAttempts = 20
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Second
	}
	return cfg, nil
}

func (c Config) printf(format string, args ...any) {
	if c.Out != nil {
		fmt.Fprintf(c.Out, format, args...)
	}
}

func fromSpec(t time.Time) string {
	if t.IsZero() {
		return "earliest"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// begin finds the unfinished rebuild of exactly these projections, or
// starts one: resolves the start offsets and creates the fresh tables.
func begin(ctx context.Context, store projections.Store, adm *kadm.Client, dec *projections.Decoder, cfg Config) (string, map[tp]int64, bool, error) {
	runs, err := store.Runs(ctx)
	if err != nil {
		return "", nil, false, err
	}
	mine := map[string]projections.Run{}
	for _, r := range runs {
		if slices.Contains(cfg.Projections, r.Projection) {
			mine[r.Projection] = r
		}
	}
	if len(mine) > 0 {
		var gen string
		start := map[tp]int64{}
		for _, r := range mine {
			if gen != "" && r.Generation != gen {
				return "", nil, false, fmt.Errorf("projections have different unfinished rebuilds (%s, %s): resume each alone or abort", gen, r.Generation)
			}
			gen = r.Generation
			for k, v := range r.Start {
				start[k] = v
			}
		}
		if len(mine) != len(cfg.Projections) {
			return "", nil, false, fmt.Errorf("rebuild %s covers only some of %s: resume it with the same projections, or abort it",
				gen, strings.Join(cfg.Projections, ", "))
		}
		return gen, start, true, nil
	}
	var listed kadm.ListedOffsets
	if cfg.From.IsZero() {
		listed, err = adm.ListStartOffsets(ctx, dec.Topics()...)
	} else {
		listed, err = adm.ListOffsetsAfterMilli(ctx, cfg.From.UnixMilli(), dec.Topics()...)
	}
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return "", nil, false, fmt.Errorf("listing start offsets: %w", err)
	}
	gen := "r" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	start := map[tp]int64{}
	var newRuns []projections.Run
	for _, p := range cfg.Projections {
		r := projections.Run{Projection: p, Generation: gen, From: fromSpec(cfg.From), Start: map[tp]int64{}}
		for _, topic := range projections.Sources(cfg.Streams.Topics, p) {
			for part, o := range listed[topic] {
				k := tp{Topic: topic, Partition: part}
				r.Start[k], start[k] = o.Offset, o.Offset
			}
		}
		newRuns = append(newRuns, r)
	}
	if err := store.BeginRebuild(ctx, newRuns); err != nil {
		return "", nil, false, err
	}
	return gen, start, false, nil
}

func endOffsets(ctx context.Context, adm *kadm.Client, topics []string) (map[tp]int64, error) {
	listed, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing end offsets: %w", err)
	}
	out := map[tp]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[tp{Topic: o.Topic, Partition: o.Partition}] = o.Offset })
	return out, nil
}

func reached(pos, target map[tp]int64) bool {
	for k, t := range target {
		if pos[k] < t {
			return false
		}
	}
	return true
}

// polled is one poll's decoded batch (nil when the poll found nothing).
type polled struct {
	b       *projections.Batch
	rejects []projections.Reject
}

// consume applies batches until every partition reaches its target. A
// goroutine fetches and decodes the next batch while the current one is
// written: the database, not the decoder, should set the pace.
func consume(ctx context.Context, cl *kgo.Client, store projections.Store, dec *projections.Decoder, gen string,
	pos, target map[tp]int64, pr *progress, cfg Config) (int64, error) {
	// Start where the checkpoint is, not where an earlier round's fetcher
	// stopped (it may have read past what was applied).
	seek := map[string]map[int32]kgo.EpochOffset{}
	for k, v := range pos {
		if seek[k.Topic] == nil {
			seek[k.Topic] = map[int32]kgo.EpochOffset{}
		}
		seek[k.Topic][k.Partition] = kgo.EpochOffset{Epoch: -1, Offset: v}
	}
	cl.SetOffsets(seek)
	fctx, stop := context.WithCancel(ctx)
	ch := make(chan polled, 1)
	go func() {
		defer close(ch)
		for fctx.Err() == nil {
			pollCtx, cancel := context.WithTimeout(fctx, time.Second)
			fetches := cl.PollRecords(pollCtx, cfg.BatchSize)
			cancel()
			fetches.EachError(func(topic string, part int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					cfg.Logger.Warn("fetching", "topic", topic, "partition", part, "err", err)
				}
			})
			var p polled
			if recs := fetches.Records(); len(recs) > 0 {
				p.b, p.rejects = dec.Decode(recs, gen)
			}
			select {
			case ch <- p:
			case <-fctx.Done():
				return
			}
		}
	}()
	defer func() {
		stop()
		for range ch { //nolint:revive // wait for the fetcher to stop before anyone seeks again
		}
	}()
	var events int64
	lastData := time.Now()
	for !reached(pos, target) {
		var p polled
		select {
		case <-ctx.Done():
			return events, ctx.Err()
		case p = <-ch:
		}
		if p.b == nil {
			if time.Since(lastData) > cfg.IdleTimeout {
				for k, t := range target {
					if pos[k] < t {
						cfg.Logger.Warn("partition yields nothing below its end; counting it done", "topic", k.Topic, "partition", k.Partition, "at", pos[k], "end", t)
						target[k] = pos[k]
					}
				}
			}
			pr.print(pos, target, false)
			continue
		}
		lastData = time.Now()
		for _, r := range p.rejects {
			cfg.Logger.Warn("skipping undecodable record", "topic", r.Pos.Topic, "partition", r.Pos.Partition, "offset", r.Pos.Offset, "err", r.Err)
		}
		if err := applyRetry(ctx, store, p.b); err != nil {
			return events, err
		}
		for _, o := range p.b.Offsets {
			k := tp{Topic: o.Topic, Partition: o.Partition}
			pos[k] = max(pos[k], o.Next)
		}
		events += int64(p.b.Events)
		pr.events += int64(p.b.Events)
		pr.print(pos, target, false)
		if cfg.Stop != nil && cfg.Stop(pr.done(pos)) {
			return events, ErrStopped
		}
	}
	return events, nil
}

// applyRetry gives a batch a few tries: a rebuild is resumable, so a
// persistent failure is better reported than waited out.
func applyRetry(ctx context.Context, store projections.Store, b *projections.Batch) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = store.Apply(ctx, b); err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 300 * time.Millisecond):
		}
	}
	return err
}

// progress prints "done/total events, rate, ETA" lines.
type progress struct {
	cfg    Config
	gen    string
	start  map[tp]int64
	began  time.Time
	last   time.Time
	events int64 // applied by this process
}

func (p *progress) done(pos map[tp]int64) int64 {
	var d int64
	for k, v := range pos {
		d += max(0, v-p.start[k])
	}
	return d
}

func (p *progress) print(pos, target map[tp]int64, force bool) {
	if !force && time.Since(p.last) < p.cfg.Every {
		return
	}
	p.last = time.Now()
	var total int64
	for k, t := range target {
		total += max(0, t-p.start[k])
	}
	done := p.done(pos)
	elapsed := time.Since(p.began).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.events) / elapsed
	}
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(min(done, total)) / float64(total)
	}
	eta := "-"
	if rate > 0 && total > done {
		eta = time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second).String()
	} else if total <= done {
		eta = "0s"
	}
	p.cfg.printf("replay %s: %d/%d events (%.1f%%), %.0f events/s, ETA %s\n", p.gen, min(done, total), total, pct, rate, eta)
	p.cfg.Logger.Debug("replay progress", "generation", p.gen, "done", done, "total", total, "rate", rate)
}
