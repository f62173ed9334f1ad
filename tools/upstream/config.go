package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// File is the on-disk form of an upstreams config file: a JSON object with
// one key, "upstreams", holding a list of Config. See the package
// documentation for an example.
type File struct {
	Upstreams []Config `json:"upstreams"`
}

// Config describes one upstream MCP server. Exactly one of Stdio and HTTP is
// set. Every other field is optional; its zero value selects the default
// documented on the field.
type Config struct {
	// Name identifies the upstream in logs and errors and is the namespace of
	// its tools: tool "echo" of upstream "everything" is exposed as
	// "everything.echo". Letters, digits, '_' and '-' only (no '.', the
	// namespace separator), at most 64 characters. Required.
	Name string `json:"name"`

	// Stdio runs the upstream as a child process speaking MCP on stdin/stdout.
	Stdio *StdioConfig `json:"stdio,omitempty"`
	// HTTP reaches the upstream over Streamable HTTP.
	HTTP *HTTPConfig `json:"http,omitempty"`

	// Stateless declares that the upstream keeps no state per MCP session, so
	// calls of different downstream sessions may share pooled upstream
	// sessions. False (the default) gives every downstream session its own
	// upstream session (its own process, for stdio) that no other user ever
	// sees; only calls without a downstream session (2026-07-28 stateless
	// requests) share pooled sessions.
	Stateless bool `json:"stateless,omitempty"`

	// ProtocolVersion is the MCP revision requested from the upstream.
	// Default "2025-11-25" (initialize and a real session; servers that
	// predate server/discover answer it directly instead of failing a probe).
	ProtocolVersion string `json:"protocolVersion,omitempty"`

	Timeouts Timeouts      `json:"timeouts,omitzero"`
	Pool     PoolConfig    `json:"pool,omitzero"`
	Breaker  BreakerConfig `json:"breaker,omitzero"`
}

// StdioConfig is an upstream started as a child process.
type StdioConfig struct {
	// Command is the program to run, looked up in PATH when it has no slash;
	// a relative path with a slash is relative to Dir. Required.
	Command string `json:"command"`
	// Args are the program's arguments.
	Args []string `json:"args,omitempty"`
	// Env is added to the child's environment. In a config file, "${NAME}"
	// in a value is replaced by the variable NAME of mcpstream's own
	// environment (Load fails if it is unset), so secrets stay out of the file.
	Env map[string]string `json:"env,omitempty"`
	// InheritEnv passes mcpstream's whole environment to the child. False
	// (the default) passes only PATH, HOME, USER, LOGNAME, SHELL, TERM,
	// TMPDIR, LANG, LC_ALL and TZ, plus Env: a third-party server should not
	// see the platform's credentials.
	InheritEnv bool `json:"inheritEnv,omitempty"`
	// Dir is the child's working directory. Load resolves a relative Dir
	// against the config file's directory, and an empty one to that
	// directory; for a Config built in code, empty means mcpstream's own
	// working directory.
	Dir string `json:"dir,omitempty"`
}

// HTTPConfig is an upstream reached over Streamable HTTP.
type HTTPConfig struct {
	// URL is the MCP endpoint, http or https. Required.
	URL string `json:"url"`
	// Headers are sent with every request (e.g. Authorization). In a config
	// file, "${NAME}" in a value is replaced like in StdioConfig.Env.
	Headers map[string]string `json:"headers,omitempty"`
}

// Timeouts bound each kind of upstream operation. Zero selects the default.
type Timeouts struct {
	// Connect bounds starting a process or opening a connection plus the
	// MCP handshake. Default 30s (npx-style wrappers can be slow to start).
	Connect Duration `json:"connect,omitzero"`
	// Call bounds one tools/call. Default 0: no limit of its own, the
	// caller's deadline (the executor's --tool-timeout) applies. Either way a
	// call that misses its deadline counts as a failure for the breaker.
	Call Duration `json:"call,omitzero"`
	// List bounds one tools/list (all pages). Default 30s.
	List Duration `json:"list,omitzero"`
	// Idle closes an upstream session nobody used for this long (stopping its
	// process, for stdio). Default 5m.
	Idle Duration `json:"idle,omitzero"`
	// Acquire bounds the wait for a free pool slot when all are busy.
	// Default 10s; then the call fails with ErrPoolExhausted.
	Acquire Duration `json:"acquire,omitzero"`
	// Shutdown is how long a stdio process gets to exit after its stdin is
	// closed, and again after SIGTERM, before SIGKILL. Default 2s.
	Shutdown Duration `json:"shutdown,omitzero"`
}

// PoolConfig bounds the upstream sessions (processes, for stdio) one
// upstream may have open at once.
type PoolConfig struct {
	// Size is the most upstream sessions open, opening or closing at once,
	// across all downstream sessions. Default 4, at most 1024.
	Size int `json:"size,omitzero"`
}

// BreakerConfig tunes the upstream's circuit breaker.
type BreakerConfig struct {
	// Failures is how many consecutive failed calls (connection failures,
	// transport errors, missed deadlines) open the circuit. Default 5.
	Failures int `json:"failures,omitzero"`
	// OpenFor is how long an open circuit fails calls fast before letting
	// probes through (half-open). Default 30s.
	OpenFor Duration `json:"openFor,omitzero"`
	// HalfOpenProbes is how many calls may probe a half-open circuit at
	// once; the others still fail fast. Default 1.
	HalfOpenProbes int `json:"halfOpenProbes,omitzero"`
}

// Defaults applied by New to zero fields.
const (
	DefaultProtocolVersion = "2025-11-25"
	DefaultConnectTimeout  = 30 * time.Second
	DefaultListTimeout     = 30 * time.Second
	DefaultIdleTimeout     = 5 * time.Minute
	DefaultAcquireTimeout  = 10 * time.Second
	DefaultShutdownTimeout = 2 * time.Second
	DefaultPoolSize        = 4
	DefaultBreakerFailures = 5
	DefaultBreakerOpenFor  = 30 * time.Second
	DefaultHalfOpenProbes  = 1

	maxPoolSize = 1024
)

// supportedProtocolVersions are the revisions the go-sdk client can speak.
var supportedProtocolVersions = []string{"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Duration is a time.Duration written in JSON as a Go duration string
// ("1.5s", "2m"). Numbers are rejected: a bare 30 could mean seconds or
// nanoseconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Load reads and validates an upstreams config file. Unknown fields are
// errors (a typo must not silently select a default). "${NAME}" references in
// stdio env values and HTTP header values are expanded from the environment,
// and stdio working directories are resolved against the file's directory.
// Defaults are not filled in; New does that.
func Load(path string) ([]Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("upstream: load config: %w", err)
	}
	cfgs, err := parse(data, filepath.Dir(path), os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("upstream: load config %s: %w", path, err)
	}
	return cfgs, nil
}

func parse(data []byte, baseDir string, lookup func(string) (string, bool)) ([]Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse JSON: trailing data after the top-level object")
	}
	if f.Upstreams == nil {
		return nil, errors.New(`missing "upstreams" list`)
	}
	absBase, err := filepath.Abs(baseDir)
	if err != nil {
		return nil, fmt.Errorf("resolve config directory: %w", err)
	}
	seen := make(map[string]int, len(f.Upstreams))
	for i := range f.Upstreams {
		c := &f.Upstreams[i]
		where := fmt.Sprintf("upstreams[%d]", i)
		if c.Name != "" {
			where += fmt.Sprintf(" (%q)", c.Name)
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if j, dup := seen[c.Name]; dup {
			return nil, fmt.Errorf("%s: name %q already used by upstreams[%d]", where, c.Name, j)
		}
		seen[c.Name] = i
		if c.Stdio != nil {
			if c.Stdio.Env, err = expandMap(c.Stdio.Env, lookup); err != nil {
				return nil, fmt.Errorf("%s: stdio.env: %w", where, err)
			}
			switch {
			case c.Stdio.Dir == "":
				c.Stdio.Dir = absBase
			case !filepath.IsAbs(c.Stdio.Dir):
				c.Stdio.Dir = filepath.Join(absBase, c.Stdio.Dir)
			}
		}
		if c.HTTP != nil {
			if c.HTTP.Headers, err = expandMap(c.HTTP.Headers, lookup); err != nil {
				return nil, fmt.Errorf("%s: http.headers: %w", where, err)
			}
		}
	}
	return f.Upstreams, nil
}

var refRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandMap replaces ${NAME} in values. Only the braced form is expanded, so
// a literal '$' elsewhere (common in tokens) is left alone.
func expandMap(m map[string]string, lookup func(string) (string, bool)) (map[string]string, error) {
	if len(m) == 0 {
		return m, nil
	}
	out := make(map[string]string, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic first error
	for _, k := range keys {
		v := m[k]
		var missing string
		out[k] = refRE.ReplaceAllStringFunc(v, func(ref string) string {
			name := ref[2 : len(ref)-1]
			val, ok := lookup(name)
			if !ok && missing == "" {
				missing = name
			}
			return val
		})
		if missing != "" {
			return nil, fmt.Errorf("%s refers to ${%s}, which is not set in the environment", k, missing)
		}
	}
	return out, nil
}

// Validate reports the first problem with c, naming the offending field.
// New calls it; Load calls it for every entry.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("name: required")
	}
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("name %q: use 1-64 letters, digits, '_' or '-' (no '.', it separates namespace and tool)", c.Name)
	}
	switch {
	case c.Stdio == nil && c.HTTP == nil:
		return errors.New(`set one transport: "stdio" or "http"`)
	case c.Stdio != nil && c.HTTP != nil:
		return errors.New(`set only one transport: both "stdio" and "http" are present`)
	case c.Stdio != nil:
		if strings.TrimSpace(c.Stdio.Command) == "" {
			return errors.New("stdio.command: required")
		}
		for k := range c.Stdio.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return fmt.Errorf("stdio.env: invalid variable name %q", k)
			}
		}
	default:
		if c.HTTP.URL == "" {
			return errors.New("http.url: required")
		}
		u, err := url.Parse(c.HTTP.URL)
		if err != nil {
			return fmt.Errorf("http.url: %w", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("http.url %q: scheme must be http or https", c.HTTP.URL)
		}
		if u.Host == "" {
			return fmt.Errorf("http.url %q: no host", c.HTTP.URL)
		}
		for k := range c.HTTP.Headers {
			if k == "" || strings.ContainsAny(k, " :\r\n") {
				return fmt.Errorf("http.headers: invalid header name %q", k)
			}
		}
	}
	if c.ProtocolVersion != "" && !slices.Contains(supportedProtocolVersions, c.ProtocolVersion) {
		return fmt.Errorf("protocolVersion %q: supported are %s", c.ProtocolVersion, strings.Join(supportedProtocolVersions, ", "))
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{
		{"timeouts.connect", c.Timeouts.Connect}, {"timeouts.call", c.Timeouts.Call},
		{"timeouts.list", c.Timeouts.List}, {"timeouts.idle", c.Timeouts.Idle},
		{"timeouts.acquire", c.Timeouts.Acquire}, {"timeouts.shutdown", c.Timeouts.Shutdown},
		{"breaker.openFor", c.Breaker.OpenFor},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s: must not be negative, got %s", d.name, d.v.D())
		}
	}
	if c.Pool.Size < 0 || c.Pool.Size > maxPoolSize {
		return fmt.Errorf("pool.size: must be between 1 and %d (0 for the default %d), got %d", maxPoolSize, DefaultPoolSize, c.Pool.Size)
	}
	if c.Breaker.Failures < 0 {
		return fmt.Errorf("breaker.failures: must not be negative, got %d", c.Breaker.Failures)
	}
	if c.Breaker.HalfOpenProbes < 0 {
		return fmt.Errorf("breaker.halfOpenProbes: must not be negative, got %d", c.Breaker.HalfOpenProbes)
	}
	return nil
}

// withDefaults returns c with every zero optional field set to its default.
func (c Config) withDefaults() Config {
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	if c.ProtocolVersion == "" {
		c.ProtocolVersion = DefaultProtocolVersion
	}
	def(&c.Timeouts.Connect, DefaultConnectTimeout)
	def(&c.Timeouts.List, DefaultListTimeout)
	def(&c.Timeouts.Idle, DefaultIdleTimeout)
	def(&c.Timeouts.Acquire, DefaultAcquireTimeout)
	def(&c.Timeouts.Shutdown, DefaultShutdownTimeout)
	def(&c.Breaker.OpenFor, DefaultBreakerOpenFor)
	if c.Pool.Size == 0 {
		c.Pool.Size = DefaultPoolSize
	}
	if c.Breaker.Failures == 0 {
		c.Breaker.Failures = DefaultBreakerFailures
	}
	if c.Breaker.HalfOpenProbes == 0 {
		c.Breaker.HalfOpenProbes = DefaultHalfOpenProbes
	}
	return c
}
