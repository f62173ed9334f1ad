package upstream

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// session is one upstream MCP session (one process, for stdio).
type session struct {
	// key is the downstream session id it is bound to; "" for a pooled
	// session that serves one stateless call at a time.
	key    string
	router *router
	ready  chan struct{} // closed when the dial finished; err says how

	// Set by the dialer before ready is closed.
	cs   *mcp.ClientSession
	proc *process
	err  error
	// gone is closed when the SDK has ended cs (nil until dialed).
	gone <-chan struct{}
	// http is the session's own transport when its dial had to leave the
	// provider's shared one; closed with the session.
	http *http.Transport

	// Guarded by pool.mu.
	inflight int
	lastUsed time.Time
	broken   bool // must not take new calls; closed when inflight drops to 0
	closing  bool
}

// pool bounds and reuses upstream sessions.
//
// Every session holds one of size slots from the moment its dial starts
// until its close has finished (the process is reaped), so at most size
// processes exist at any instant, also while sessions are being replaced.
// When all slots are taken, a caller first evicts an idle session (a pooled
// one before a downstream-bound one, least recently used first) and
// otherwise waits, at most the acquire timeout, for a slot or an idle pooled
// session. Evicting an idle bound session drops that downstream session's
// upstream state; its next call gets a fresh upstream session, never
// someone else's.
type pool struct {
	size           int
	acquireTimeout time.Duration
	idleTimeout    time.Duration
	dial           func(context.Context, *session) error
	close          func(*session)
	newRouter      func() *router
	log            *slog.Logger
	now            func() time.Time

	mu      sync.Mutex
	closed  bool
	live    int                 // slots taken
	idle    []*session          // pooled, idle, oldest first
	bound   map[string]*session // by downstream session id
	all     map[*session]struct{}
	changed chan struct{} // closed and replaced whenever a slot or idle session may have become available
	waiting int
	opened  uint64
	maxLive int

	closers sync.WaitGroup
	ctx     context.Context // cancelled by shutdown
	cancel  context.CancelFunc
	stop    chan struct{}
	reaped  chan struct{}
}

func (p *pool) init() {
	p.bound = make(map[string]*session)
	p.all = make(map[*session]struct{})
	p.changed = make(chan struct{})
	p.stop = make(chan struct{})
	p.reaped = make(chan struct{})
	p.ctx, p.cancel = context.WithCancel(context.Background())
	go p.reapIdle()
}

// acquire returns a ready session for the downstream session key ("" for a
// stateless call). The caller must release it.
func (p *pool) acquire(ctx context.Context, key string) (*session, error) {
	var timeout <-chan time.Time
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if key != "" {
			if s := p.bound[key]; s != nil && s.dead() {
				p.dropDeadLocked(s)
			} else if s != nil {
				s.inflight++
				s.lastUsed = p.now()
				p.mu.Unlock()
				return p.awaitReady(ctx, s)
			}
		} else if n := len(p.idle); n > 0 {
			// Most recently used first: it is warm, and the oldest ones are
			// left to age out under the idle timeout.
			s := p.idle[n-1]
			if s.dead() {
				p.dropDeadLocked(s)
				p.mu.Unlock()
				continue
			}
			p.idle = p.idle[:n-1]
			s.inflight = 1
			s.lastUsed = p.now()
			p.mu.Unlock()
			return s, nil
		}
		if p.live < p.size {
			s := &session{key: key, router: p.newRouter(), ready: make(chan struct{}), inflight: 1, lastUsed: p.now()}
			p.live++
			p.opened++
			p.maxLive = max(p.maxLive, p.live)
			p.all[s] = struct{}{}
			if key != "" {
				p.bound[key] = s
			}
			p.mu.Unlock()
			return p.open(ctx, s)
		}
		if v := p.victimLocked(); v != nil {
			p.retireLocked(v)
			p.closeLocked(v)
			// Its slot frees when the close finishes; wait for that below.
		}
		ch := p.changed
		p.waiting++
		p.mu.Unlock()

		if timeout == nil {
			t := time.NewTimer(p.acquireTimeout)
			defer t.Stop()
			timeout = t.C
		}
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		case <-timeout:
			err = ErrPoolExhausted
		}
		p.mu.Lock()
		p.waiting--
		p.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// open dials a session that already holds a slot. Shutdown cancels dials
// in progress, so it never waits a whole connect timeout.
func (p *pool) open(ctx context.Context, s *session) (*session, error) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.ctx, cancel)
	err := p.dial(ctx, s)
	stop()
	cancel()
	p.mu.Lock()
	if err == nil && p.closed {
		err = ErrClosed // shutdown skipped it while dialing; close it below
	}
	p.mu.Unlock()
	s.err = err
	close(s.ready)
	if err == nil {
		return s, nil
	}
	p.mu.Lock()
	p.retireLocked(s)
	s.inflight--
	p.closeLocked(s)
	p.mu.Unlock()
	return nil, err
}

// awaitReady waits for a bound session another call is still dialing.
func (p *pool) awaitReady(ctx context.Context, s *session) (*session, error) {
	select {
	case <-s.ready:
	case <-ctx.Done():
		p.release(s, false)
		return nil, ctx.Err()
	}
	if s.err != nil {
		// The dialing call owns the cleanup; we only drop our claim.
		p.mu.Lock()
		s.inflight--
		p.mu.Unlock()
		return nil, &followerError{s.err}
	}
	return s, nil
}

// followerError is a failed dial as seen by the calls that waited for
// another call's dial. The dialing call reports the failure to the breaker;
// counting it once per waiting call would let one failed process start open
// the circuit.
type followerError struct{ err error }

func (e *followerError) Error() string { return e.err.Error() }
func (e *followerError) Unwrap() error { return e.err }

// release returns a session after a call. broken means it must not be used
// again (its transport failed, or it missed a deadline and may be wedged).
func (p *pool) release(s *session, broken bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.inflight--
	s.lastUsed = p.now()
	if broken && !s.broken {
		p.retireLocked(s)
	}
	switch {
	case s.closing:
	case s.broken || p.closed:
		if s.inflight == 0 {
			p.closeLocked(s)
		}
	case s.key == "":
		p.idle = append(p.idle, s)
	}
	p.signalLocked()
}

// dead reports whether s is a dialed session that cannot take a call: its
// process exited (crashed, or quit on its own while idle), or the SDK gave
// its connection up (an HTTP upstream that forgot the session, a stream it
// could not resume). Taking it would fail the call for nothing.
func (s *session) dead() bool {
	select {
	case <-s.ready:
	default:
		return false
	}
	if s.err != nil {
		return false
	}
	if s.proc != nil {
		select {
		case <-s.proc.exited:
			return true
		default:
		}
	}
	if s.gone != nil {
		select {
		case <-s.gone:
			return true
		default:
		}
	}
	return false
}

// dropDeadLocked retires a dead session and closes it once unused.
func (p *pool) dropDeadLocked(s *session) {
	if s.proc != nil {
		p.log.Warn("upstream session's process exited; replacing it", "session", s.key, "pid", s.proc.pid)
	} else {
		p.log.Warn("upstream session's connection ended; replacing it", "session", s.key)
	}
	p.retireLocked(s)
	if s.inflight == 0 {
		p.closeLocked(s)
	}
}

// retireLocked stops routing new calls to s.
func (p *pool) retireLocked(s *session) {
	s.broken = true
	if s.key != "" && p.bound[s.key] == s {
		delete(p.bound, s.key)
	}
	for i, x := range p.idle {
		if x == s {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
}

// closeLocked closes s in the background; its slot frees when it is done.
func (p *pool) closeLocked(s *session) {
	if s.closing {
		return
	}
	s.closing = true
	p.closers.Add(1)
	go func() {
		defer p.closers.Done()
		p.close(s)
		p.mu.Lock()
		p.live--
		delete(p.all, s)
		p.signalLocked()
		p.mu.Unlock()
	}()
}

// victimLocked picks an idle session to evict for a waiting caller.
func (p *pool) victimLocked() *session {
	if len(p.idle) > 0 {
		return p.idle[0]
	}
	var v *session
	for _, s := range p.bound {
		if s.inflight == 0 && !s.closing && (v == nil || s.lastUsed.Before(v.lastUsed)) {
			select {
			case <-s.ready:
			default:
				continue // still dialing
			}
			v = s
		}
	}
	return v
}

func (p *pool) signalLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// closeSession closes the upstream session bound to a downstream session,
// e.g. when that session ended. Calls still running on it finish first.
func (p *pool) closeSession(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.bound[key]
	if s == nil {
		return
	}
	p.retireLocked(s)
	if s.inflight == 0 {
		p.closeLocked(s)
	}
}

// reapIdle closes sessions unused for the idle timeout.
func (p *pool) reapIdle() {
	defer close(p.reaped)
	every := min(max(p.idleTimeout/4, 10*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		cutoff := p.now().Add(-p.idleTimeout)
		var old []*session
		for _, s := range p.idle {
			if s.lastUsed.Before(cutoff) {
				old = append(old, s)
			}
		}
		for _, s := range p.bound {
			if s.inflight == 0 && s.lastUsed.Before(cutoff) {
				select {
				case <-s.ready:
					old = append(old, s)
				default:
				}
			}
		}
		for _, s := range old {
			p.log.Debug("closing idle upstream session", "session", s.key)
			p.retireLocked(s)
			p.closeLocked(s)
		}
		p.mu.Unlock()
	}
}

// shutdown closes every session, busy or not, and waits until all are
// closed (every process reaped).
func (p *pool) shutdown() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.closers.Wait()
		return
	}
	p.closed = true
	close(p.stop)
	p.cancel()
	for s := range p.all {
		select {
		case <-s.ready:
		default:
			// Still dialing (now cancelled): open or release closes it.
			continue
		}
		p.retireLocked(s)
		p.closeLocked(s)
	}
	p.signalLocked()
	p.mu.Unlock()
	<-p.reaped
	// Wait for every slot to come back, including those of cancelled dials.
	for {
		p.mu.Lock()
		live := p.live
		ch := p.changed
		p.mu.Unlock()
		if live == 0 {
			break
		}
		<-ch
	}
	p.closers.Wait()
}

// Stats is a snapshot of one upstream's pool and breaker.
type Stats struct {
	// Live counts upstream sessions holding a pool slot: open, opening or
	// closing (for stdio, processes that may exist).
	Live int
	// MaxLive is the highest Live seen since New.
	MaxLive int
	// Idle counts pooled sessions waiting for a stateless call.
	Idle int
	// Bound counts sessions bound to a downstream session.
	Bound int
	// Opened counts sessions opened (dials started) since New.
	Opened uint64
	// Waiting counts calls waiting for a slot.
	Waiting int
	// Breaker is the circuit breaker's state.
	Breaker BreakerState
}

func (p *pool) stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Live: p.live, MaxLive: p.maxLive, Idle: len(p.idle), Bound: len(p.bound),
		Opened: p.opened, Waiting: p.waiting}
}
