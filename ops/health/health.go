// Package health serves /healthz (the process is alive) and /readyz (every
// part of this role can do its job) for every role.
package health

import (
	"encoding/json"
	"net/http"
	"sort"
	"sync"
)

// Checks is a set of named readiness checks.
type Checks struct {
	mu     sync.Mutex
	checks map[string]func() bool
}

// Add registers a readiness check.
func (c *Checks) Add(name string, ready func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checks == nil {
		c.checks = map[string]func() bool{}
	}
	c.checks[name] = ready
}

// Ready runs every check.
func (c *Checks) Ready() (bool, map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := true
	res := make(map[string]bool, len(c.checks))
	for n, f := range c.checks {
		ok := f()
		res[n] = ok
		all = all && ok
	}
	return all, res
}

// Register mounts /healthz and /readyz on mux.
func (c *Checks) Register(mux *http.ServeMux) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, res := c.Ready()
		names := make([]string, 0, len(res))
		for n := range res {
			names = append(names, n)
		}
		sort.Strings(names)
		body := struct {
			Ready  bool            `json:"ready"`
			Checks map[string]bool `json:"checks"`
		}{ok, res}
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(body)
	})
}
