//go:build unix

package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// safeEnv is what a child sees of mcpstream's environment unless InheritEnv
// is set: enough to find programs and a home, nothing that could carry a
// credential. (The TypeScript MCP SDK's stdio client makes the same choice.)
var safeEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "LANG", "LC_ALL", "TZ"}

// process is one stdio upstream: the child, its own process group, and our
// ends of its pipes.
type process struct {
	cmd    *exec.Cmd
	pid    int
	stdin  *os.File // our write end
	stdout *os.File // our read end
	exited chan struct{}
	log    *slog.Logger
}

// startProcess starts the command in a new process group. The group is
// what we kill on stop: wrappers like npx or sh start the real server as a
// grandchild, and killing only the direct child would leave it running.
//
// We make the pipes ourselves (os.Pipe) instead of cmd.StdoutPipe: with
// *os.File ends, exec starts no copying goroutines, so Wait returns when
// the child exits even if a grandchild still holds the pipe open.
func startProcess(cfg *StdioConfig, log *slog.Logger) (*process, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("stdin pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	cmd := exec.Command(cfg.Command, cfg.Args...)
	cmd.Dir = cfg.Dir
	cmd.Env = childEnv(cfg)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	// The child has its copies now (or never will); ours must go, or
	// stdout would never reach EOF when the child dies.
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start %s: %w", cfg.Command, err)
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, stdin: inW, stdout: outR, exited: make(chan struct{}),
		log: log.With("pid", cmd.Process.Pid)}
	go func() {
		err := cmd.Wait()
		if err != nil {
			p.log.Debug("upstream process exited", "err", err)
		}
		close(p.exited)
	}()
	go p.drainStderr(errR)
	return p, nil
}

func childEnv(cfg *StdioConfig) []string {
	var env []string
	if cfg.InheritEnv {
		env = os.Environ()
	} else {
		for _, k := range safeEnv {
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
	}
	keys := make([]string, 0, len(cfg.Env))
	for k := range cfg.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+cfg.Env[k])
	}
	return env
}

// drainStderr logs the child's stderr line by line at debug level. It must
// keep reading: a child blocked on a full stderr pipe stops answering.
func (p *process) drainStderr(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		p.log.Debug("upstream stderr", "line", strings.TrimSpace(sc.Text()))
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		// A line over 64 KiB ends the scanner; keep draining raw.
		_, _ = io.Copy(io.Discard, r)
	}
}

// stop ends the process the way the MCP spec asks (close stdin, wait, then
// SIGTERM, wait, then SIGKILL), for the whole process group, and returns
// once the direct child has been reaped. Safe to call more than once.
func (p *process) stop(grace time.Duration) {
	_ = p.stdin.Close()
	if !p.waitExit(grace) {
		_ = syscall.Kill(-p.pid, syscall.SIGTERM)
		if !p.waitExit(grace) {
			_ = syscall.Kill(-p.pid, syscall.SIGKILL)
			if !p.waitExit(10 * time.Second) {
				p.log.Error("upstream process survived SIGKILL")
			}
		}
	}
	// The direct child is gone; grandchildren in its group may not be (a
	// wrapper that exits on stdin EOF while its server lingers). The group
	// id stays reserved while any member lives, so this reaches exactly the
	// stragglers, or nobody (ESRCH).
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	_ = p.stdout.Close()
}

func (p *process) waitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.exited:
		return true
	case <-t.C:
		return false
	}
}
