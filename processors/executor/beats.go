package executor

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mcpstream/mcpstream/schemas"
)

// peer is the last beat seen from one executor id.
type peer struct {
	beat     *schemas.ExecutorBeat
	seen     time.Time // local receipt time: no trust in other clocks
	orphaned bool      // its calls were reported; wait for a new beat
}

func (e *Executor) beatInterval() time.Duration {
	d := e.cfg.Lease / 10
	if d < 50*time.Millisecond {
		d = 50 * time.Millisecond
	}
	return d
}

func (e *Executor) kickBeat() {
	select {
	case e.beatKick <- struct{}{}:
	default:
	}
}

// beatLoop publishes the calls this executor holds, at once when new calls
// arrive (their job records are acknowledged only after that) and every
// beat interval otherwise.
func (e *Executor) beatLoop(ctx context.Context) {
	t := time.NewTicker(e.beatInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.beatKick:
		case <-t.C:
		}
		e.beat(ctx, false)
	}
}

func (e *Executor) beat(ctx context.Context, final bool) bool {
	e.mu.Lock()
	v := e.version
	ids := make([]string, 0, len(e.held))
	for id := range e.held {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	slices.Sort(ids)
	val, err := e.reg.EncodeBeat(&schemas.ExecutorBeat{Executor: e.cfg.ID, Incarnation: e.inc, BeatAt: time.Now(),
		Inflight: ids, Stopped: final && len(ids) == 0})
	if err != nil {
		e.log.Error("encoding beat", "err", err)
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Lease/2)
	defer cancel()
	if err := e.cl.ProduceSync(cctx, &kgo.Record{Topic: e.cfg.Streams.Topics.Executors(), Key: []byte(e.cfg.ID), Value: val}).FirstErr(); err != nil {
		if ctx.Err() == nil {
			e.log.Warn("publishing beat", "err", err)
		}
		return false
	}
	e.mu.Lock()
	if v > e.durable {
		e.durable = v
	}
	e.lastBeatOK = time.Now()
	close(e.durableCh)
	e.durableCh = make(chan struct{})
	e.mu.Unlock()
	return true
}

// finalBeat tells the others this incarnation stopped cleanly, so they need
// not wait out the lease for calls it no longer holds.
func (e *Executor) finalBeat() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.beat(ctx, true)
}

// waitDurable waits until a beat covering version v is durable.
func (e *Executor) waitDurable(ctx context.Context, v uint64) bool {
	for {
		e.mu.Lock()
		if e.durable >= v {
			e.mu.Unlock()
			return true
		}
		ch := e.durableCh
		e.mu.Unlock()
		e.kickBeat()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// healthy reports whether this executor's beats reach the broker: when they
// do not, the others may already have reported its calls orphaned, and
// answering a caller directly could contradict what the table says.
func (e *Executor) healthy() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return time.Since(e.lastBeatOK) < e.cfg.Lease/2
}

type verdict int

const (
	holderUnknown verdict = iota // alive, not (yet) listing the call
	holderTracks                 // alive and lists it: its death would be noticed
	holderDead
)

func (e *Executor) holderVerdict(holder, inc, id string) (verdict, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.peers[holder]
	if p == nil {
		return holderUnknown, ""
	}
	switch {
	case p.beat.Incarnation != inc:
		return holderDead, "holder restarted"
	case p.beat.Stopped:
		return holderDead, "holder stopped"
	case time.Since(p.seen) > e.cfg.Lease:
		return holderDead, "no beat within the lease"
	case slices.Contains(p.beat.Inflight, id):
		return holderTracks, ""
	}
	return holderUnknown, ""
}

// monitor follows the executors table and reports the calls of executors
// that restarted or went silent for longer than the lease. Every survivor
// reports; the processor ignores reports that no longer match the claim.
func (e *Executor) monitor(ctx context.Context, caughtUp func()) {
	check := time.NewTicker(e.beatInterval())
	defer check.Stop()
	fetched := make(chan kgo.Fetches)
	go func() {
		defer close(fetched)
		for {
			f := e.tbl.PollFetches(ctx)
			if ctx.Err() != nil || f.IsClientClosed() {
				return
			}
			select {
			case fetched <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	ends, endsKnown := e.tableEnds(ctx)
	// A table read that stalls (a partition's last records compacted
	// away) must not keep the executor from working forever.
	stall := time.AfterFunc(e.cfg.Lease, func() {
		e.log.Warn("executors table not read to its end in time; judging conflicts on what was read")
		caughtUp()
	})
	defer stall.Stop()
	if !endsKnown || len(ends) == 0 {
		endsKnown = false
		stall.Stop()
		caughtUp()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case f, ok := <-fetched:
			if !ok {
				return
			}
			f.EachRecord(func(rec *kgo.Record) {
				e.onBeat(ctx, rec)
				if end, ok := ends[rec.Partition]; endsKnown && ok && end <= rec.Offset+1 {
					delete(ends, rec.Partition)
				}
			})
			if endsKnown && len(ends) == 0 {
				endsKnown = false
				stall.Stop()
				caughtUp()
			}
		case <-check.C:
			e.reportSilent(ctx)
		}
	}
}

// tableEnds lists the executors table's end offsets, so the monitor knows
// when it has read every beat written before it started.
func (e *Executor) tableEnds(ctx context.Context) (map[int32]int64, bool) {
	ends, err := listEnds(ctx, e.tbl, e.cfg.Streams.Topics.Executors())
	if err != nil {
		e.log.Warn("listing executors table ends", "err", err)
		return nil, false
	}
	for p, o := range ends {
		if o == 0 {
			delete(ends, p)
		}
	}
	return ends, true
}

func (e *Executor) onBeat(ctx context.Context, rec *kgo.Record) {
	if rec.Value == nil {
		return
	}
	b, err := e.reg.DecodeBeat(rec.Value)
	if err != nil {
		e.log.Error("dropping undecodable beat", "offset", rec.Offset, "err", err)
		return
	}
	e.mu.Lock()
	prev := e.peers[b.Executor]
	e.peers[b.Executor] = &peer{beat: b, seen: time.Now()}
	e.mu.Unlock()
	if prev != nil && prev.beat.Incarnation != b.Incarnation && !prev.orphaned && len(prev.beat.Inflight) > 0 {
		// A restart is certain death of the previous incarnation: no need
		// to wait for the lease. This also covers this executor's own
		// previous life, read back at startup.
		e.orphanAll(ctx, prev.beat, "holder restarted")
	}
}

func (e *Executor) reportSilent(ctx context.Context) {
	e.mu.Lock()
	var dead []*schemas.ExecutorBeat
	for id, p := range e.peers {
		if p.orphaned || p.beat.Stopped || len(p.beat.Inflight) == 0 {
			continue
		}
		if id == e.cfg.ID && p.beat.Incarnation == e.inc {
			continue
		}
		if time.Since(p.seen) > e.cfg.Lease {
			p.orphaned = true
			dead = append(dead, p.beat)
		}
	}
	e.mu.Unlock()
	for _, b := range dead {
		e.orphanAll(ctx, b, "no beat within the lease")
	}
}

func (e *Executor) orphanAll(ctx context.Context, b *schemas.ExecutorBeat, reason string) {
	e.log.Info("reporting orphaned calls", "holder", b.Executor, "holder_incarnation", b.Incarnation, "calls", len(b.Inflight), "reason", reason)
	for _, id := range b.Inflight {
		e.sendControl(ctx, schemas.ControlOrphan, id, b.Executor, b.Incarnation, false, reason)
	}
}
