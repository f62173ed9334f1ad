package upstream

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/tools"
)

// The real upstream: @modelcontextprotocol/server-everything, installed by
// ops/upstreams/install.sh. Without it (no npm registry access on the first
// run) every test that needs it fails, loudly: a skipped federation test
// would be counted as green.

type everything struct {
	node, entry, loopback string
}

var (
	installOnce sync.Once
	installed   everything
	installErr  error
)

func serverEverything(t testing.TB) everything {
	t.Helper()
	installOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			installErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "ops", "upstreams", "install.sh"))
		cmd.Dir = root
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			installErr = fmt.Errorf("ops/upstreams/install.sh failed (%v); it needs node and npm registry access "+
				"the first time it runs.\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			return
		}
		for _, line := range strings.Split(stdout.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "NODE="); ok {
				installed.node = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "EVERYTHING="); ok {
				installed.entry = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "LOOPBACK="); ok {
				installed.loopback = strings.TrimSpace(v)
			}
		}
		if installed.node == "" || installed.entry == "" || installed.loopback == "" {
			installErr = fmt.Errorf("install.sh printed no NODE=/EVERYTHING=/LOOPBACK= lines:\n%s", stdout.String())
		}
	})
	if installErr != nil {
		t.Fatalf("server-everything (the real MCP upstream these tests need) is not available: %v", installErr)
	}
	return installed
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	re := regexp.MustCompile(`(?m)^module\s+github\.com/mcpstream/mcpstream\s*$`)
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && re.Match(data) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("module root not found above the working directory")
		}
		dir = parent
	}
}

// markerVar tags every process a test starts, so /proc tells us how many
// of them are alive, independently of the provider's own accounting.
const markerVar = "MCPSTREAM_UPSTREAM_TEST"

func newMarker(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// liveProcs counts live (not zombie) processes whose environment carries
// marker.
func liveProcs(t testing.TB, marker string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	want := []byte(markerVar + "=" + marker + "\x00")
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(append(env, 0), want) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Field 3 (after "(comm)") is the state; Z is a zombie.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		n++
	}
	return n
}

// stdioConfig runs server-everything over stdio with test-sized timeouts.
func stdioConfig(t testing.TB, name, marker string) Config {
	ev := serverEverything(t)
	return Config{
		Name: name,
		Stdio: &StdioConfig{
			Command: ev.node,
			Args:    []string{ev.entry},
			Env:     map[string]string{markerVar: marker},
		},
		Timeouts: Timeouts{Connect: Duration(20 * time.Second), Shutdown: Duration(time.Second)},
	}
}

func newProvider(t testing.TB, cfg Config, opts Options) *Provider {
	t.Helper()
	p, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// startHTTPEverything starts server-everything in Streamable HTTP mode on a
// loopback port and returns its MCP URL. The process is killed (whole
// group) at cleanup.
func startHTTPEverything(t testing.TB, marker string) string {
	t.Helper()
	port := freePort(t)
	url, _ := startHTTPEverythingOn(t, port, marker)
	return url
}

// startHTTPEverythingOn is startHTTPEverything on a given port; kill stops
// the server early (SIGKILL, as a crash).
func startHTTPEverythingOn(t testing.TB, port int, marker string) (url string, kill func()) {
	t.Helper()
	ev := serverEverything(t)
	cmd := exec.Command(ev.node, "--require", ev.loopback, ev.entry, "streamableHttp")
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), markerVar+"="+marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &logs // it logs every request to stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server-everything streamableHttp: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	kill = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	t.Cleanup(kill)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("server-everything streamableHttp exited early:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server-everything streamableHttp did not listen on %s within 20s:\n%s", addr, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr + "/mcp", kill
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// countingProxy sits between the provider and an HTTP upstream and counts,
// from the wire, MCP initialize requests and session DELETEs: the number of
// upstream sessions the provider opened, and how many were open at once.
type countingProxy struct {
	url string

	mu       sync.Mutex
	inits    int
	deletes  int
	maxOpen  int
	sessions map[string]bool // Mcp-Session-Id values seen on requests
}

func newCountingProxy(t testing.TB, upstream string) *countingProxy {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	cp := &countingProxy{sessions: map[string]bool{}}
	// The target without its path: the proxy keeps the request's path.
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	rp.FlushInterval = -1 // SSE: flush every write
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			var m struct {
				Method string `json:"method"`
			}
			if json.Unmarshal(body, &m) == nil && m.Method == "initialize" {
				cp.mu.Lock()
				cp.inits++
				cp.maxOpen = max(cp.maxOpen, cp.inits-cp.deletes)
				cp.mu.Unlock()
			}
		}
		if sid := r.Header.Get("Mcp-Session-Id"); sid != "" {
			cp.mu.Lock()
			cp.sessions[sid] = true
			if r.Method == http.MethodDelete {
				cp.deletes++
			}
			cp.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
	})
	cp.url = "http://" + l.Addr().String() + target.Path
	return cp
}

func (cp *countingProxy) counts() (inits, deletes, maxOpen int) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.inits, cp.deletes, cp.maxOpen
}

// recorder is a tools.Notifier that remembers what it got, and whether
// anything arrived after the call returned (an ordering bug).
type recorder struct {
	mu       sync.Mutex
	events   []string
	progress []float64
	totals   []float64
	logs     []string
	returned bool
	late     int
}

func (r *recorder) Progress(_ context.Context, progress, total float64, message string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.returned {
		r.late++
	}
	r.events = append(r.events, fmt.Sprintf("progress %g/%g", progress, total))
	r.progress = append(r.progress, progress)
	r.totals = append(r.totals, total)
	return nil
}

func (r *recorder) Log(_ context.Context, level, logger string, data any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.returned {
		r.late++
	}
	b, _ := json.Marshal(data)
	r.events = append(r.events, "log "+level+" "+string(b))
	r.logs = append(r.logs, level+" "+string(b))
	return nil
}

func (r *recorder) markReturned() {
	r.mu.Lock()
	r.returned = true
	r.mu.Unlock()
}

var _ tools.Notifier = (*recorder)(nil)

// text returns the concatenated text content of a result.
func text(t testing.TB, res *tools.Result) string {
	t.Helper()
	var parts []string
	for _, c := range res.Content {
		var tc struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(c, &tc); err != nil {
			t.Fatalf("content %s: %v", c, err)
		}
		if tc.Type == "text" {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

func call(t testing.TB, reg interface {
	CallTool(context.Context, tools.Call, tools.Notifier) (*tools.Result, error)
}, sessionID, name, args string) *tools.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var raw json.RawMessage
	if args != "" {
		raw = json.RawMessage(args)
	}
	res, err := reg.CallTool(ctx, tools.Call{Name: name, Arguments: raw, SessionID: sessionID}, nil)
	if err != nil {
		t.Fatalf("call %s(%s) in session %q: %v", name, args, sessionID, err)
	}
	return res
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
