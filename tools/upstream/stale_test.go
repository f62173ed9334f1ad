package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/tools"
)

// resetProxy is a TCP proxy in front of an HTTP upstream that can make the
// connections it carries stale, the way a network partition leaves them:
// a stale connection still looks open to the client, and the first bytes
// the client sends on it are answered with a TCP reset (the peer no longer
// knows the connection). Connections opened afterwards work normally.
type resetProxy struct {
	l       net.Listener
	backend atomic.Pointer[string] // host:port the proxy forwards to
	resets  atomic.Int64           // stale connections reset on use

	mu    sync.Mutex
	conns map[*proxied]struct{}
}

type proxied struct {
	client, server net.Conn
	stale          atomic.Bool
}

func newResetProxy(t testing.TB, backend string) *resetProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rp := &resetProxy{l: l, conns: map[*proxied]struct{}{}}
	rp.backend.Store(&backend)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go rp.serve(c)
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		rp.mu.Lock()
		defer rp.mu.Unlock()
		for pc := range rp.conns {
			_ = pc.client.Close()
			_ = pc.server.Close()
		}
	})
	return rp
}

func (rp *resetProxy) addr() string { return rp.l.Addr().String() }

func (rp *resetProxy) serve(c net.Conn) {
	s, err := net.DialTimeout("tcp", *rp.backend.Load(), 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	pc := &proxied{client: c, server: s}
	rp.mu.Lock()
	rp.conns[pc] = struct{}{}
	rp.mu.Unlock()
	defer func() {
		rp.mu.Lock()
		delete(rp.conns, pc)
		rp.mu.Unlock()
		_ = c.Close()
		_ = s.Close()
	}()
	go func() {
		_, _ = io.Copy(c, s)
		_ = c.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 && pc.stale.Load() {
			// SO_LINGER 0: close with RST, after the client's request
			// was written, so net/http cannot tell it from a request
			// the server dropped, and does not replay a POST.
			rp.resets.Add(1)
			_ = c.(*net.TCPConn).SetLinger(0)
			return
		}
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// staleAll makes every connection open now stale.
func (rp *resetProxy) staleAll() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	for pc := range rp.conns {
		pc.stale.Store(true)
	}
	return len(rp.conns)
}

// resetAll resets every connection open now, at once.
func (rp *resetProxy) resetAll() {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	for pc := range rp.conns {
		_ = pc.client.(*net.TCPConn).SetLinger(0)
		_ = pc.client.Close()
		_ = pc.server.Close()
	}
}

// After a network partition the provider's HTTP transport still holds
// keep-alive connections the upstream has forgotten. A new upstream
// session must not fail its handshake on one ("initialize: ... connection
// reset by peer", seen in the container suite's scenario 4): the handshake
// is repeated on a fresh connection, and the breaker, set to open at the
// first failure, hears of none.
func TestDialRetriesOnStaleConnection(t *testing.T) {
	_, url := startGoSDKServer(t)
	backend := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/mcp")
	rp := newResetProxy(t, backend)
	p := newProvider(t, Config{Name: "gosdk", HTTP: &HTTPConfig{URL: "http://" + rp.addr() + "/mcp"},
		Timeouts: Timeouts{Connect: Duration(10 * time.Second)}, Breaker: BreakerConfig{Failures: 1}}, Options{})

	if got := text(t, call(t, p, "a", "add", `{"a":1,"b":2}`)); got != "3" {
		t.Fatalf("first call: %q", got)
	}
	// Session a ends; its connections go back to the transport's idle pool
	// (the DELETE's included), ready to be reused by the next dial.
	p.CloseSession("a")
	waitFor(t, 10*time.Second, "session a to be closed", func() bool { return p.Stats().Live == 0 })
	if n := rp.staleAll(); n == 0 {
		t.Fatal("no keep-alive connection left open to the upstream: the test would prove nothing")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := p.CallTool(ctx, tools.Call{Name: "add", Arguments: []byte(`{"a":2,"b":40}`), SessionID: "b"}, nil)
	if err != nil {
		t.Fatalf("call after the connections went stale: %v (stale connections reset: %d)", err, rp.resets.Load())
	}
	if got := text(t, res); got != "42" {
		t.Errorf("call after the connections went stale: %q", got)
	}
	if rp.resets.Load() == 0 {
		t.Error("no stale connection was reused: the handshake never met one, the test proved nothing")
	}
	if st := p.Stats(); st.Breaker != BreakerClosed || st.Opened != 2 || st.Live != 1 {
		t.Errorf("stats %+v: want one new session, breaker closed", st)
	}
}

// A handshake that keeps failing on the connection is tried a bounded
// number of times and then fails as unavailable (one breaker failure).
func TestDialRetriesBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				// Read the request, then reset: every connection fails.
				buf := make([]byte, 4096)
				_, _ = c.Read(buf)
				_ = c.(*net.TCPConn).SetLinger(0)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() { _ = l.Close() })
	p := newProvider(t, Config{Name: "gosdk", HTTP: &HTTPConfig{URL: "http://" + l.Addr().String() + "/mcp"},
		Timeouts: Timeouts{Connect: Duration(10 * time.Second)}, Breaker: BreakerConfig{Failures: 2}}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = p.CallTool(ctx, tools.Call{Name: "add", SessionID: "a"}, nil)
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.Op != "connect" {
		t.Fatalf("want an UnavailableError (connect), got %v", err)
	}
	if n := accepted.Load(); n != dialAttempts {
		t.Errorf("%d connections tried, want %d (one per attempt)", n, dialAttempts)
	}
	// One failed dial is one breaker failure, however many attempts it made.
	if st := p.Stats(); st.Breaker != BreakerClosed {
		t.Errorf("breaker %v after one failed dial with Failures: 2, want closed", st.Breaker)
	}
}

// An HTTP upstream that restarted has forgotten our sessions. Once the SDK
// has noticed (its standalone stream comes back with 404), the pooled
// session is dead: the next call gets a new one instead of failing on it.
func TestDeadHTTPSessionReplaced(t *testing.T) {
	_, url1 := startGoSDKServer(t)
	_, url2 := startGoSDKServer(t) // the restarted upstream: no session of ours
	host := func(u string) string { return strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/mcp") }
	rp := newResetProxy(t, host(url1))
	p := newProvider(t, Config{Name: "gosdk", HTTP: &HTTPConfig{URL: "http://" + rp.addr() + "/mcp"}, Stateless: true,
		Breaker: BreakerConfig{Failures: 1}}, Options{})
	if got := text(t, call(t, p, "", "add", `{"a":1,"b":2}`)); got != "3" {
		t.Fatalf("first call: %q", got)
	}
	p.pool.mu.Lock()
	if len(p.pool.idle) != 1 {
		p.pool.mu.Unlock()
		t.Fatalf("%d idle pooled sessions after one stateless call, want 1", len(p.pool.idle))
	}
	stale := p.pool.idle[0]
	p.pool.mu.Unlock()
	ended := make(chan struct{})
	go func() { _ = stale.cs.Wait(); close(ended) }()
	b := host(url2)
	rp.backend.Store(&b)
	rp.resetAll()
	// The SDK retries the standalone stream after about a second, gets 404
	// from the upstream that does not know the session, and gives it up.
	select {
	case <-ended:
	case <-time.After(15 * time.Second):
		t.Fatal("the SDK did not give up the session the upstream forgot within 15s")
	}
	// The provider's own watcher sees the end a moment later.
	waitFor(t, 5*time.Second, "the pool to see the session dead", stale.dead)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := p.CallTool(ctx, tools.Call{Name: "add", Arguments: []byte(`{"a":2,"b":40}`)}, nil)
	if err != nil {
		t.Fatalf("call after the upstream forgot the pooled session: %v", err)
	}
	if got := text(t, res); got != "42" {
		t.Errorf("call: %q", got)
	}
	if st := p.Stats(); st.Breaker != BreakerClosed || st.Opened != 2 {
		t.Errorf("stats %+v: want the dead session replaced, breaker closed", st)
	}
}
