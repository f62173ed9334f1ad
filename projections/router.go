package projections

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Router spreads the projections over several PostgreSQL databases by
// consistent hashing of each row's shard key (sessions by session id, tool
// calls by event id: the same keys native partitioning and Citus use).
//
// Exactly-once per database: each database gets, in one transaction, its
// share of a batch's rows and the batch's offsets (all of them, so every
// database's offsets say how far it has seen). A projector restarts from
// the lowest offset over the databases; a database that was ahead sees
// those records again and its position guards make them no-ops.
//
// Resharding (adding or removing a DSN) moves the keys of the changed
// ring points only; see DESIGN.md for the procedure (rebuild with the new
// list, or copy the moved keys then delete them from their old shard).
type Router struct {
	shards []*PG
	ring   *Ring
}

var _ Store = (*Router)(nil)

// OpenRouter connects to every DSN in cfg. Shards default to LayoutPlain.
func OpenRouter(ctx context.Context, cfg StoreConfig) (*Router, error) {
	if cfg.Layout == LayoutAuto {
		cfg.Layout = LayoutPlain
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 1
	}
	cfg = cfg.withDefaults()
	r := &Router{}
	var names []string
	for _, dsn := range cfg.DSNs {
		s, err := OpenPG(ctx, dsn, cfg)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.shards = append(r.shards, s)
		names = append(names, s.Name())
	}
	ring, err := NewRing(names, 0)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("projections router: %w", err)
	}
	r.ring = ring
	return r, nil
}

// Shards are the databases, in DSN order.
func (r *Router) Shards() []*PG { return r.shards }

// ShardOf returns the index of the shard that holds key.
func (r *Router) ShardOf(key string) int { return r.ring.Owner(key) }

// Close implements Store.
func (r *Router) Close() {
	for _, s := range r.shards {
		s.Close()
	}
}

// each runs f on every shard at once and joins their errors.
func (r *Router) each(f func(i int, s *PG) error) error {
	errs := make([]error, len(r.shards))
	var wg sync.WaitGroup
	for i, s := range r.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i, s)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Migrate implements Store.
func (r *Router) Migrate(ctx context.Context) error {
	return r.each(func(_ int, s *PG) error { return s.Migrate(ctx) })
}

// Offsets implements Store: the lowest over the shards, since a shard may
// lag the others after a failed batch. A partition missing on any shard
// starts from the beginning.
func (r *Router) Offsets(ctx context.Context, projection, gen string) (map[TopicPartition]int64, error) {
	per := make([]map[TopicPartition]int64, len(r.shards))
	err := r.each(func(i int, s *PG) error {
		m, err := s.Offsets(ctx, projection, gen)
		per[i] = m
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[TopicPartition]int64{}
	for tp, n := range per[0] {
		low, everywhere := n, true
		for _, m := range per[1:] {
			o, ok := m[tp]
			if !ok {
				everywhere = false
				break
			}
			low = min(low, o)
		}
		if everywhere {
			out[tp] = low
		}
	}
	return out, nil
}

// Apply implements Store.
func (r *Router) Apply(ctx context.Context, b *Batch) error {
	parts := make([]*Batch, len(r.shards))
	for i := range parts {
		parts[i] = &Batch{Gen: b.Gen, Offsets: b.Offsets}
	}
	for _, s := range b.Sessions {
		p := parts[r.ring.Owner(s.SessionID)]
		p.Sessions = append(p.Sessions, s)
	}
	for _, c := range b.Calls {
		p := parts[r.ring.Owner(c.EventID)]
		p.Calls = append(p.Calls, c)
	}
	for _, p := range parts {
		p.Events = len(p.Sessions) + len(p.Calls)
	}
	return r.each(func(i int, s *PG) error { return s.Apply(ctx, parts[i]) })
}

// BeginRebuild implements Store.
func (r *Router) BeginRebuild(ctx context.Context, runs []Run) error {
	return r.each(func(_ int, s *PG) error { return s.BeginRebuild(ctx, runs) })
}

// Runs implements Store: a rebuild is unfinished while any shard has not
// swapped it.
func (r *Router) Runs(ctx context.Context) ([]Run, error) {
	per := make([][]Run, len(r.shards))
	if err := r.each(func(i int, s *PG) error {
		var err error
		per[i], err = s.Runs(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []Run
	for _, runs := range per {
		for _, run := range runs {
			if !seen[run.Projection] {
				seen[run.Projection] = true
				out = append(out, run)
			}
		}
	}
	slices.SortFunc(out, func(a, b Run) int {
		if a.Projection < b.Projection {
			return -1
		}
		if a.Projection > b.Projection {
			return 1
		}
		return 0
	})
	return out, nil
}

// Swap implements Store. Shards swap one after the other, each atomically;
// a shard that swapped already is skipped, so after an interruption (or an
// ErrBehind from a later shard) calling Swap again finishes the job.
func (r *Router) Swap(ctx context.Context, projections []string, gen string) error {
	for _, s := range r.shards {
		if err := s.Swap(ctx, projections, gen); err != nil {
			return err
		}
	}
	return nil
}

// AbortRebuild implements Store.
func (r *Router) AbortRebuild(ctx context.Context, projections []string, gen string) error {
	return r.each(func(_ int, s *PG) error { return s.AbortRebuild(ctx, projections, gen) })
}

// Dump implements Store: every shard's rows, merged in key order.
func (r *Router) Dump(ctx context.Context, projection, gen string) ([]string, error) {
	per := make([][]string, len(r.shards))
	if err := r.each(func(i int, s *PG) error {
		var err error
		per[i], err = s.Dump(ctx, projection, gen)
		return err
	}); err != nil {
		return nil, err
	}
	var out []string
	for _, rows := range per {
		out = append(out, rows...)
	}
	slices.Sort(out) // the order PG.Dump gives

	return out, nil
}
