// Package redistest runs a real redis-server for tests: on a free port,
// without persistence, in the test's temp dir, so a test can stop, pause
// and restart it. Tests that need Redis fail (never skip) when the binary
// is missing: a skipped outage test must not count as green.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Binary is the redis-server executable.
var Binary = "/usr/bin/redis-server"

// Server is one redis-server process (or none, while stopped).
type Server struct {
	t    testing.TB
	Port int
	dir  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts redis-server on a free port and waits until it answers. It
// is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("redis-server is required for this test: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{t: t, Port: port, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.Kill)
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

func (s *Server) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatalf("redis-server on %d already running", s.Port)
	}
	var lastErr error
	// The port can be briefly unavailable right after a kill; a few
	// attempts, bounded in time.
	for attempt := 0; attempt < 20; attempt++ {
		cmd := exec.Command(Binary, "--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", s.dir, "--loglevel", "warning")
		if err := cmd.Start(); err != nil {
			s.t.Fatalf("starting redis-server: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if err := waitPing(s.Addr(), exited, 5*time.Second); err == nil {
			s.cmd = cmd
			go func() { <-exited }()
			return
		} else {
			lastErr = err
		}
		cmd.Process.Kill()
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on port %d never answered: %v", s.Port, lastErr)
}

func waitPing(addr string, exited <-chan error, limit time.Duration) error {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond, Protocol: 2})
	defer c.Close()
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		select {
		case e := <-exited:
			return fmt.Errorf("redis-server exited: %v", e)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err = c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Kill stops the server with SIGKILL (its data is gone: no persistence).
// It is a no-op when stopped.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGCONT) // a paused server must die too
	s.cmd.Process.Kill()
	// Wait until the port is free, so a restart on it works.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.Addr(), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	s.cmd = nil
}

// Restart starts a fresh, empty server on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
}

// Pause freezes the server (SIGSTOP): connections stay open and requests
// hang, like a partition or a stalled host. Its data is kept.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redis-server on %d is not running", s.Port)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signalling redis-server: %v", err)
	}
}

// Client returns a plain client for assertions, closed when the test ends.
func (s *Server) Client() *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), Protocol: 2, MaxRetries: -1})
	s.t.Cleanup(func() { c.Close() })
	return c
}
