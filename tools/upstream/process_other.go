//go:build !unix

package upstream

import (
	"errors"
	"log/slog"
	"os"
	"time"
)

// process is unsupported off unix: stdio upstreams need process groups to
// be reaped reliably. HTTP upstreams work everywhere.
type process struct {
	pid    int
	stdin  *os.File
	stdout *os.File
	exited chan struct{}
}

func startProcess(*StdioConfig, *slog.Logger) (*process, error) {
	return nil, errors.New("stdio upstreams are supported on unix only")
}

func (p *process) stop(time.Duration) {}
