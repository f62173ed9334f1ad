package upstream

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadExample(t *testing.T) {
	t.Setenv("EVERYTHING_TOKEN", "s3cret")
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := Load(filepath.Join(root, "ops", "upstreams", "example.json"))
	if err != nil {
		t.Fatalf("the example config in ops/upstreams must load: %v", err)
	}
	if len(cfgs) != 2 {
		t.Fatalf("got %d upstreams", len(cfgs))
	}
	st := cfgs[0]
	if st.Stdio == nil || st.Stdio.Command != "node" || st.Stdio.Env["EVERYTHING_TOKEN"] != "s3cret" {
		t.Errorf("stdio entry: %+v", st.Stdio)
	}
	if want := filepath.Join(root, ".cache", "upstreams"); st.Stdio.Dir != want {
		t.Errorf("stdio dir resolved to %q, want %q (relative to the config file)", st.Stdio.Dir, want)
	}
	if st.Timeouts.Call.D() != 2*time.Minute || st.Pool.Size != 4 || st.Breaker.OpenFor.D() != 30*time.Second {
		t.Errorf("stdio timeouts/pool/breaker: %+v %+v %+v", st.Timeouts, st.Pool, st.Breaker)
	}
	h := cfgs[1]
	if h.HTTP == nil || h.HTTP.Headers["Authorization"] != "Bearer s3cret" {
		t.Errorf("http entry: %+v", h.HTTP)
	}
	d := h.withDefaults()
	if d.Timeouts.Connect.D() != DefaultConnectTimeout || d.Breaker.Failures != DefaultBreakerFailures ||
		d.Pool.Size != 8 || d.ProtocolVersion != DefaultProtocolVersion {
		t.Errorf("defaults: %+v", d)
	}
}

func TestLoadErrors(t *testing.T) {
	lookup := func(k string) (string, bool) {
		if k == "SET" {
			return "v", true
		}
		return "", false
	}
	cases := []struct{ name, json, want string }{
		{"not json", `{`, "parse JSON"},
		{"no list", `{}`, `missing "upstreams"`},
		{"unknown field", `{"upstreams":[{"name":"a","stdio":{"command":"x"},"poolsize":3}]}`, `unknown field "poolsize"`},
		{"trailing", `{"upstreams":[]} {}`, "trailing data"},
		{"no name", `{"upstreams":[{"stdio":{"command":"x"}}]}`, "upstreams[0]: name: required"},
		{"dotted name", `{"upstreams":[{"name":"a.b","stdio":{"command":"x"}}]}`, `upstreams[0] ("a.b"): name "a.b"`},
		{"no transport", `{"upstreams":[{"name":"a"}]}`, `set one transport`},
		{"two transports", `{"upstreams":[{"name":"a","stdio":{"command":"x"},"http":{"url":"http://h/mcp"}}]}`, "only one transport"},
		{"no command", `{"upstreams":[{"name":"a","stdio":{"args":["x"]}}]}`, "stdio.command: required"},
		{"bad scheme", `{"upstreams":[{"name":"a","http":{"url":"ftp://h/mcp"}}]}`, "scheme must be http or https"},
		{"no host", `{"upstreams":[{"name":"a","http":{"url":"http:///mcp"}}]}`, "no host"},
		{"duration number", `{"upstreams":[{"name":"a","stdio":{"command":"x"},"timeouts":{"call":30}}]}`, `duration must be a string`},
		{"bad duration", `{"upstreams":[{"name":"a","stdio":{"command":"x"},"timeouts":{"call":"soon"}}]}`, `duration "soon"`},
		{"negative", `{"upstreams":[{"name":"a","stdio":{"command":"x"},"timeouts":{"idle":"-1s"}}]}`, "timeouts.idle: must not be negative"},
		{"pool too big", `{"upstreams":[{"name":"a","stdio":{"command":"x"},"pool":{"size":5000}}]}`, "pool.size"},
		{"negative failures", `{"upstreams":[{"name":"a","stdio":{"command":"x"},"breaker":{"failures":-1}}]}`, "breaker.failures"},
		{"version", `{"upstreams":[{"name":"a","stdio":{"command":"x"},"protocolVersion":"2099-01-01"}]}`, "protocolVersion"},
		{"duplicate", `{"upstreams":[{"name":"a","stdio":{"command":"x"}},{"name":"a","stdio":{"command":"y"}}]}`, `upstreams[1] ("a"): name "a" already used by upstreams[0]`},
		{"unset env", `{"upstreams":[{"name":"a","stdio":{"command":"x","env":{"K":"${SET}-${UNSET}"}}}]}`, "K refers to ${UNSET}"},
		{"unset header", `{"upstreams":[{"name":"a","http":{"url":"http://h/mcp","headers":{"Authorization":"Bearer ${NOPE}"}}}]}`, "http.headers: Authorization refers to ${NOPE}"},
		{"bad header", `{"upstreams":[{"name":"a","http":{"url":"http://h/mcp","headers":{"A B":"x"}}}]}`, "invalid header name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse([]byte(tc.json), t.TempDir(), lookup)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadExpansionAndDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "up.json")
	data := `{"upstreams":[
	  {"name":"a","stdio":{"command":"./srv","dir":"sub","env":{"T":"x-${MCPSTREAM_TEST_TOKEN}-$literal"}}},
	  {"name":"b","stdio":{"command":"srv"}},
	  {"name":"c","stdio":{"command":"srv","dir":"/abs"}}]}`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MCPSTREAM_TEST_TOKEN", "tok")
	cfgs, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfgs[0].Stdio.Env["T"]; got != "x-tok-$literal" {
		t.Errorf("expansion: %q (only ${NAME} is expanded)", got)
	}
	if cfgs[0].Stdio.Dir != filepath.Join(dir, "sub") || cfgs[1].Stdio.Dir != dir || cfgs[2].Stdio.Dir != "/abs" {
		t.Errorf("dirs: %q %q %q", cfgs[0].Stdio.Dir, cfgs[1].Stdio.Dir, cfgs[2].Stdio.Dir)
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{Name: "x"}, Options{}); err == nil || !strings.Contains(err.Error(), `upstream: new "x"`) {
		t.Errorf("New with no transport: %v", err)
	}
}
