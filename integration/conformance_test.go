package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The official MCP conformance suite (ops/conformance) against the real
// mcpstream binary: `mcpstream run` as a subprocess, one `conformance
// server --scenario NAME --spec-version REV -o DIR` per scenario, judged on
// the checks.json files the suite writes (see ops/conformance/SCENARIOS.md
// sections 1 and 4).

// conformanceScenarios are the scenarios that must pass, per revision.
var conformanceScenarios = []struct {
	revision  string
	scenarios []string
}{
	{"2025-11-25", []string{
		"server-initialize", "ping", "tools-list", "tools-call-simple-text",
		"tools-call-image", "tools-call-audio", "tools-call-embedded-resource",
		"tools-call-mixed-content", "tools-call-error", "tools-call-with-progress",
		"tools-call-with-logging", "dns-rebinding-protection", "logging-set-level",
		"resources-list", "resources-read-text", "resources-read-binary", "resources-templates-read",
		"resources-subscribe", "resources-unsubscribe",
		"server-sse-multiple-streams", "server-session-lifecycle",
		"prompts-list", "prompts-get-simple", "prompts-get-with-args", "prompts-get-embedded-resource",
		"prompts-get-with-image", "completion-complete",
		"tools-call-sampling", "tools-call-elicitation", "elicitation-sep1034-defaults", "elicitation-sep1330-enums",
		"json-schema-2020-12", "server-sse-polling",
	}},
	{"2026-07-28", []string{
		"tools-list", "tools-call-simple-text", "tools-call-image",
		"tools-call-audio", "tools-call-embedded-resource", "tools-call-mixed-content",
		"tools-call-error", "tools-call-with-progress", "dns-rebinding-protection",
		"server-stateless", "server-sse-multiple-streams",
		"resources-list", "resources-read-text", "resources-read-binary", "resources-templates-read",
		"sep-2164-resource-not-found", "caching",
		"prompts-list", "prompts-get-simple", "prompts-get-with-args", "prompts-get-embedded-resource",
		"prompts-get-with-image", "completion-complete",
		"input-required-result-basic-elicitation", "input-required-result-basic-sampling",
		"input-required-result-basic-list-roots", "input-required-result-request-state",
		"input-required-result-multiple-input-requests", "input-required-result-multi-round",
		"input-required-result-missing-input-response", "input-required-result-non-tool-request",
		"input-required-result-result-type", "input-required-result-unsupported-methods",
		"input-required-result-tampered-state", "input-required-result-capability-check",
		"input-required-result-ignore-extra-params", "input-required-result-validate-input",
		"json-schema-2020-12", "http-header-validation", "http-custom-header-server-validation",
		// The tasks extension (SEP-2663): run, not scored by the suite;
		// required here.
		"tasks-lifecycle", "tasks-capability-negotiation", "tasks-wire-fields",
		"tasks-request-state-removal", "tasks-mrtr-input", "tasks-request-headers",
		"tasks-dispatch-and-envelope", "tasks-required-task-error", "tasks-mrtr-composition",
	}},
}

// conformanceStatuses are the check statuses the suite reports, in the
// order of the summary's columns.
var conformanceStatuses = []string{"SUCCESS", "FAILURE", "WARNING", "SKIPPED", "INFO"}

const (
	conformanceScenarioTimeoutMS = 30000
	conformanceStartTimeout      = 90 * time.Second
	conformanceInstallTimeout    = 10 * time.Minute
	conformanceRunTimeout        = 2 * time.Minute // per scenario process
	conformanceDetailsMax        = 2000            // bytes of a check's details printed
)

func TestConformance(t *testing.T) {
	start := time.Now()
	root := conformanceModuleRoot(t)

	node, entry := conformanceInstallSuite(t, root)
	t.Logf("conformance suite: %s %s", node, entry)

	bin := conformanceBuildBinary(t, root)
	plat := conformanceStartCluster(t, bin)
	t.Logf("mcpstream (broker, 2 processors, 2 gateways behind a round-robin proxy) up at %s after %s", plat.url, time.Since(start).Round(time.Millisecond))

	outRoot := t.TempDir()
	counts := map[string]map[string]int{} // revision -> status -> n
	var failed []string
	for _, set := range conformanceScenarios {
		counts[set.revision] = map[string]int{}
		for _, scenario := range set.scenarios {
			name := set.revision + "/" + scenario
			ok := t.Run(name, func(t *testing.T) {
				outDir := filepath.Join(outRoot, set.revision, scenario)
				out, code, err := conformanceRunScenario(t, node, entry, plat.url, set.revision, scenario, outDir)
				if code != 0 && conformanceClientTransportError(out) {
					// The suite's HTTP client (undici) reports a keep-alive
					// connection it reused after the proxy dropped it as
					// "terminated", before the server saw the request. Such a
					// run checked nothing of the server: run it once more,
					// and say so.
					t.Logf("client transport error, running %s again:\n%s", name, conformanceStripANSI(conformanceTail(out, 2000)))
					if rerr := os.RemoveAll(outDir); rerr != nil {
						t.Fatal(rerr)
					}
					out, code, err = conformanceRunScenario(t, node, entry, plat.url, set.revision, scenario, outDir)
				}
				results, perr := parseConformanceChecks(outDir)
				if perr != nil {
					t.Errorf("reading checks.json under %s: %v", outDir, perr)
				}
				v := judgeConformance(scenario, results)
				for st, n := range v.counts {
					counts[set.revision][st] += n
				}
				for _, w := range v.warnings {
					t.Logf("WARNING %s", w)
				}
				for _, p := range v.problems {
					t.Errorf("%s", p)
				}
				if err != nil {
					t.Errorf("conformance CLI: %v", err)
				} else if code != 0 {
					t.Errorf("conformance CLI exited with status %d", code)
				}
				if t.Failed() {
					t.Logf("conformance CLI output:\n%s", conformanceStripANSI(out))
				} else {
					t.Logf("%d checks: %s", v.total(), v.countsString())
				}
			})
			if !ok {
				failed = append(failed, name)
			}
		}
	}

	for _, p := range plat.procs {
		select {
		case <-p.done:
			t.Errorf("%s exited during the suite", p.name)
		default:
		}
	}
	if a, b := plat.rr.sent[0].Load(), plat.rr.sent[1].Load(); a == 0 || b == 0 {
		t.Errorf("the proxy sent %d and %d requests to the gateways: both must serve", a, b)
	} else {
		t.Logf("requests per gateway through the proxy: %d, %d", a, b)
	}

	summary := conformanceSummary(counts, failed, time.Since(start))
	t.Logf("\n%s", summary)
	if path := os.Getenv("MCPSTREAM_CONFORMANCE_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(summary), 0o644); err != nil {
			t.Errorf("writing MCPSTREAM_CONFORMANCE_REPORT: %v", err)
		}
	}
}

// conformanceModuleRoot is the nearest directory at or above the working
// directory whose go.mod declares this module.
func conformanceModuleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && regexp.MustCompile(`(?m)^module\s+github\.com/mcpstream/mcpstream\s*$`).Match(data) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("module root (go.mod of github.com/mcpstream/mcpstream) not found above the working directory")
		}
		dir = parent
	}
}

// conformanceInstallSuite runs ops/conformance/install.sh (a no-op when the
// pinned versions are present) and returns the node binary and CLI entry.
func conformanceInstallSuite(t *testing.T, root string) (node, entry string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), conformanceInstallTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "ops", "conformance", "install.sh"))
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("conformance suite not available: ops/conformance/install.sh failed (%v); "+
			"it needs npm registry access the first time it runs.\nstdout:\n%s\nstderr:\n%s",
			err, stdout.String(), stderr.String())
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "NODE="); ok {
			node = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "CONFORMANCE="); ok {
			entry = strings.TrimSpace(v)
		}
	}
	if node == "" || entry == "" {
		t.Fatalf("conformance suite not available: install.sh printed no NODE=/CONFORMANCE= lines:\n%s\nstderr:\n%s",
			stdout.String(), stderr.String())
	}
	for _, p := range []string{node, entry} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("conformance suite not available: %v", err)
		}
	}
	return node, entry
}

// conformanceBuildBinary builds cmd/mcpstream with the go on PATH.
func conformanceBuildBinary(t *testing.T, root string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "mcpstream")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/mcpstream")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mcpstream: %v\n%s", err, out)
	}
	return bin
}

// conformanceLockedBuffer is a bytes.Buffer safe for concurrent use.
type conformanceLockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *conformanceLockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *conformanceLockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// conformanceURLWriter records stdout and reports the MCP endpoint line.
type conformanceURLWriter struct {
	conformanceLockedBuffer
	partial []byte
	found   chan string
	once    sync.Once
}

var conformanceEndpointRE = regexp.MustCompile(`MCP endpoint: (http://\S+/mcp)\s*$`)

func (w *conformanceURLWriter) Write(p []byte) (int, error) {
	n, _ := w.conformanceLockedBuffer.Write(p)
	// exec copies stdout from one goroutine; partial needs no lock.
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		if m := conformanceEndpointRE.FindStringSubmatch(line); m != nil {
			w.once.Do(func() { w.found <- m[1] })
		}
	}
	return n, nil
}

type conformancePlatform struct {
	url  string
	done chan struct{}
	err  error // valid once done is closed
}

// exited reports the process's exit if it is no longer running.
func (p *conformancePlatform) exited() error {
	select {
	case <-p.done:
		if p.err == nil {
			return errors.New("exit status 0")
		}
		return p.err
	default:
		return nil
	}
}

// conformanceStartPlatform starts `mcpstream run` on a fresh data dir, on
// any free ports, in its own process group; it is stopped (SIGTERM, then
// SIGKILL for the whole group) when the test ends.
func conformanceStartPlatform(t *testing.T, bin string) *conformancePlatform {
	t.Helper()
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "run",
		"--data-dir", dataDir, "--broker-port", "0", "--listen", "127.0.0.1:0",
		// Its own key space in the machine's Redis (make run uses it too).
		"--topic-prefix", fmt.Sprintf("conformance-%d", os.Getpid()),
		// The read models have their own tests; keep the machine's
		// database out of this one.
		"--pg-dsn", "")
	// MCPSTREAM_* variables are flag defaults: keep the caller's out.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCPSTREAM_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	stdout := &conformanceURLWriter{found: make(chan string, 1)}
	stderr := &conformanceLockedBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", bin, err)
	}
	p := &conformancePlatform{done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		// Graceful first, so the broker closes its data dir before
		// t.TempDir removes it; then the whole group, unconditionally.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			t.Errorf("mcpstream did not stop within 15s of SIGTERM; killing it")
		}
		cancel()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("mcpstream stdout:\n%s", stdout.String())
			t.Logf("mcpstream stderr (last 64 KiB):\n%s", conformanceTail(stderr.String(), 64<<10))
		}
	})
	select {
	case p.url = <-stdout.found:
		return p
	case <-p.done:
		t.Fatalf("mcpstream exited before printing its MCP endpoint: %v", p.err)
	case <-time.After(conformanceStartTimeout):
		t.Fatalf("mcpstream printed no MCP endpoint within %s", conformanceStartTimeout)
	}
	return nil
}

// conformanceRunScenario runs one scenario at one revision, writing its
// results under outDir. It returns the CLI's output and exit status; err is
// set when the CLI could not run or did not finish.
func conformanceRunScenario(t *testing.T, node, entry, url, revision, scenario, outDir string) (string, int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), conformanceRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, entry, "server",
		"--url", url,
		"--scenario", scenario,
		"--spec-version", revision,
		// Extension and pending scenarios are skipped at a revision unless
		// forced; the requirement sets run them forced too.
		"--force",
		"-o", outDir,
		"--timeout", fmt.Sprint(conformanceScenarioTimeoutMS))
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0, nil
	case ctx.Err() != nil:
		return string(out), -1, fmt.Errorf("did not finish within %s: %w", conformanceRunTimeout, err)
	case errors.As(err, &exit):
		return string(out), exit.ExitCode(), nil
	default:
		return string(out), -1, err
	}
}

// conformanceCheck is one entry of a checks.json file.
type conformanceCheck struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	Status       string          `json:"status"`
	Timestamp    string          `json:"timestamp"`
	ErrorMessage string          `json:"errorMessage"`
	Details      json.RawMessage `json:"details"`
}

// conformanceResult is one checks.json file: the checks of one scenario run.
type conformanceResult struct {
	Path     string // the checks.json file
	Scenario string // from the directory name, "" if it has an unexpected shape
	Checks   []conformanceCheck
}

// conformanceDirRE matches the suite's result directory names,
// server-<scenario>-<YYYY-MM-DDTHH-MM-SS-mmmZ>.
var conformanceDirRE = regexp.MustCompile(`^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$`)

// conformanceScenarioOf is the scenario a result directory name is for.
func conformanceScenarioOf(dirName string) string {
	if m := conformanceDirRE.FindStringSubmatch(dirName); m != nil {
		return m[1]
	}
	return ""
}

// parseConformanceChecks reads every checks.json at any depth under dir,
// in path order. A missing dir is no results, not an error.
func parseConformanceChecks(dir string) ([]conformanceResult, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == dir {
				return fs.SkipAll
			}
			return err
		}
		if !d.IsDir() && d.Name() == "checks.json" {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var results []conformanceResult
	var errs []error
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var checks []conformanceCheck
		if err := json.Unmarshal(data, &checks); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		results = append(results, conformanceResult{
			Path:     p,
			Scenario: conformanceScenarioOf(filepath.Base(filepath.Dir(p))),
			Checks:   checks,
		})
	}
	return results, errors.Join(errs...)
}

// conformanceVerdict is the judgement of one scenario's results.
type conformanceVerdict struct {
	counts   map[string]int // status -> checks
	problems []string       // each one fails the scenario
	warnings []string
}

func (v conformanceVerdict) total() int {
	n := 0
	for _, c := range v.counts {
		n += c
	}
	return n
}

func (v conformanceVerdict) countsString() string {
	var parts []string
	for _, st := range conformanceStatuses {
		parts = append(parts, fmt.Sprintf("%d %s", v.counts[st], st))
	}
	for _, st := range conformanceSortedKeys(v.counts) {
		if !conformanceKnownStatus(st) {
			parts = append(parts, fmt.Sprintf("%d %s", v.counts[st], st))
		}
	}
	return strings.Join(parts, ", ")
}

// judgeConformance decides whether results of a run of scenario pass: at
// least one checks.json, all of them for scenario, no FAILURE (nor an
// unknown status), and at least one SUCCESS.
func judgeConformance(scenario string, results []conformanceResult) conformanceVerdict {
	v := conformanceVerdict{counts: map[string]int{}}
	if len(results) == 0 {
		v.problems = append(v.problems, fmt.Sprintf(
			"scenario %s produced no checks.json (not run? e.g. not applicable at this revision, or the CLI failed)", scenario))
		return v
	}
	for _, r := range results {
		if r.Scenario != scenario {
			v.problems = append(v.problems, fmt.Sprintf("%s: results are for scenario %q, want %q", r.Path, r.Scenario, scenario))
		}
		for _, c := range r.Checks {
			v.counts[c.Status]++
			switch c.Status {
			case "FAILURE":
				v.problems = append(v.problems, "FAILURE "+conformanceDescribe(c))
			case "WARNING":
				v.warnings = append(v.warnings, conformanceDescribe(c))
			case "SUCCESS", "SKIPPED", "INFO":
			default:
				v.problems = append(v.problems, fmt.Sprintf("unknown status %q: %s", c.Status, conformanceDescribe(c)))
			}
		}
	}
	if v.counts["SUCCESS"] == 0 {
		v.problems = append(v.problems, fmt.Sprintf(
			"scenario %s has no SUCCESS check (%d checks: %s): a run that checked nothing does not pass",
			scenario, v.total(), v.countsString()))
	}
	return v
}

func conformanceDescribe(c conformanceCheck) string {
	s := fmt.Sprintf("[%s] %s", c.ID, c.Description)
	if c.ErrorMessage != "" {
		s += "\n    error: " + c.ErrorMessage
	}
	if d := bytes.TrimSpace(c.Details); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
		var compact bytes.Buffer
		if json.Compact(&compact, d) == nil {
			d = compact.Bytes()
		}
		if len(d) > conformanceDetailsMax {
			d = append(d[:conformanceDetailsMax:conformanceDetailsMax], "..."...)
		}
		s += "\n    details: " + string(d)
	}
	return s
}

// conformanceSummary is the table of check statuses per revision.
func conformanceSummary(counts map[string]map[string]int, failed []string, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "MCP conformance summary (checks per status; %s)\n", elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "%-12s %9s %9s %9s %9s %9s\n", "revision", "SUCCESS", "FAILURE", "WARNING", "SKIPPED", "INFO")
	total := map[string]int{}
	var revs []string
	for _, set := range conformanceScenarios {
		revs = append(revs, set.revision)
	}
	for _, rev := range revs {
		c := counts[rev]
		fmt.Fprintf(&b, "%-12s %9d %9d %9d %9d %9d\n", rev, c["SUCCESS"], c["FAILURE"], c["WARNING"], c["SKIPPED"], c["INFO"])
		for st, n := range c {
			total[st] += n
		}
	}
	fmt.Fprintf(&b, "%-12s %9d %9d %9d %9d %9d\n", "total", total["SUCCESS"], total["FAILURE"], total["WARNING"], total["SKIPPED"], total["INFO"])
	for _, st := range conformanceSortedKeys(total) {
		if !conformanceKnownStatus(st) {
			fmt.Fprintf(&b, "other status %q: %d\n", st, total[st])
		}
	}
	if len(failed) == 0 {
		b.WriteString("all scenarios passed\n")
	} else {
		fmt.Fprintf(&b, "FAILED scenarios (%d): %s\n", len(failed), strings.Join(failed, ", "))
	}
	return b.String()
}

func conformanceKnownStatus(st string) bool {
	for _, k := range conformanceStatuses {
		if st == k {
			return true
		}
	}
	return false
}

func conformanceSortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var conformanceANSIRE = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func conformanceStripANSI(s string) string { return conformanceANSIRE.ReplaceAllString(s, "") }

func conformanceTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "...\n" + s
}

// TestParseChecks feeds the parser and the verdict hand-made checks.json
// files, including bogus ones that must fail a scenario.
func TestParseChecks(t *testing.T) {
	const stamp = "-2026-12-03T17-16-53-682Z"
	write := func(t *testing.T, root, dirName, body string) {
		t.Helper()
		dir := filepath.Join(root, dirName)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "checks.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func(id, status, errMsg string) string {
		c := map[string]any{"id": id, "name": id, "description": "checks " + id, "status": status,
			"timestamp": "2026-12-03T17:16:53.941Z", "specReferences": []any{}}
		if errMsg != "" {
			c["errorMessage"] = errMsg
			c["details"] = map[string]any{"got": "bogus"}
		}
		b, _ := json.Marshal(c)
		return string(b)
	}
	arr := func(items ...string) string { return "[" + strings.Join(items, ",") + "]" }

	if got := conformanceScenarioOf("server-tools-call-with-progress" + stamp); got != "tools-call-with-progress" {
		t.Errorf("scenario of dir name = %q", got)
	}
	if got := conformanceScenarioOf("something-else"); got != "" {
		t.Errorf("scenario of odd dir name = %q, want empty", got)
	}

	cases := []struct {
		name      string
		scenario  string
		files     map[string]string // dir name -> checks.json
		parseErr  bool
		pass      bool
		problems  []string // substrings that must appear among the problems
		warnings  int
		successes int
	}{
		{name: "all success", scenario: "ping",
			files: map[string]string{"server-ping" + stamp: arr(check("ping", "SUCCESS", ""), check("wire-schema-valid", "SUCCESS", ""))},
			pass:  true, successes: 2},
		{name: "warning and info still pass", scenario: "tools-list",
			files: map[string]string{"server-tools-list" + stamp: arr(check("tools-list", "SUCCESS", ""),
				check("tools-list-deterministic-order", "WARNING", "order differs"), check("x", "INFO", ""), check("y", "SKIPPED", ""))},
			pass: true, warnings: 1, successes: 1},
		{name: "one failure", scenario: "tools-call-error",
			files: map[string]string{"server-tools-call-error" + stamp: arr(check("tools-call-error", "FAILURE", "Expected isError true"),
				check("wire-schema-valid", "SUCCESS", ""))},
			problems: []string{"FAILURE [tools-call-error]", "Expected isError true", `"got":"bogus"`}, successes: 1},
		{name: "no checks.json", scenario: "ping", files: map[string]string{},
			problems: []string{"no checks.json"}},
		{name: "empty check list", scenario: "ping",
			files:    map[string]string{"server-ping" + stamp: "[]"},
			problems: []string{"no SUCCESS check"}},
		{name: "only skipped and warnings", scenario: "server-stateless",
			files:    map[string]string{"server-server-stateless" + stamp: arr(check("a", "SKIPPED", ""), check("b", "WARNING", "meh"))},
			problems: []string{"no SUCCESS check"}, warnings: 1},
		{name: "unknown status", scenario: "ping",
			files:    map[string]string{"server-ping" + stamp: arr(check("ping", "SUCCESS", ""), check("odd", "BROKEN", ""))},
			problems: []string{`unknown status "BROKEN"`}, successes: 1},
		{name: "results of another scenario", scenario: "ping",
			files:    map[string]string{"server-tools-list" + stamp: arr(check("tools-list", "SUCCESS", ""))},
			problems: []string{`want "ping"`}, successes: 1},
		{name: "failure in a second file", scenario: "ping",
			files: map[string]string{
				"server-ping" + stamp:                  arr(check("ping", "SUCCESS", "")),
				"server-ping-2026-12-03T17-16-54-000Z": arr(check("ping", "FAILURE", "result has keys")),
			},
			problems: []string{"result has keys"}, successes: 1},
		{name: "malformed json", scenario: "ping",
			files:    map[string]string{"server-ping" + stamp: `{"id":"ping"`},
			parseErr: true, problems: []string{"no checks.json"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for dirName, body := range tc.files {
				write(t, root, dirName, body)
			}
			// Other files next to the results are ignored.
			if err := os.WriteFile(filepath.Join(root, "notes.txt"), []byte("not checks"), 0o644); err != nil {
				t.Fatal(err)
			}
			results, err := parseConformanceChecks(root)
			if (err != nil) != tc.parseErr {
				t.Fatalf("parse error = %v, want error: %v", err, tc.parseErr)
			}
			v := judgeConformance(tc.scenario, results)
			if pass := len(v.problems) == 0; pass != tc.pass {
				t.Errorf("pass = %v, want %v; problems: %q", pass, tc.pass, v.problems)
			}
			all := strings.Join(v.problems, "\n")
			for _, want := range tc.problems {
				if !strings.Contains(all, want) {
					t.Errorf("problems lack %q:\n%s", want, all)
				}
			}
			if len(v.warnings) != tc.warnings {
				t.Errorf("warnings = %q, want %d", v.warnings, tc.warnings)
			}
			if v.counts["SUCCESS"] != tc.successes {
				t.Errorf("SUCCESS count = %d, want %d", v.counts["SUCCESS"], tc.successes)
			}
		})
	}

	t.Run("missing dir", func(t *testing.T) {
		results, err := parseConformanceChecks(filepath.Join(t.TempDir(), "nope"))
		if err != nil || len(results) != 0 {
			t.Fatalf("got %v, %v; want no results, no error", results, err)
		}
		if v := judgeConformance("ping", results); len(v.problems) == 0 {
			t.Fatal("a scenario without results passed")
		}
	})

	t.Run("summary", func(t *testing.T) {
		s := conformanceSummary(map[string]map[string]int{
			"2025-11-25": {"SUCCESS": 20, "WARNING": 1},
			"2026-07-28": {"SUCCESS": 30, "FAILURE": 2, "SKIPPED": 3},
		}, []string{"2026-07-28/ping"}, time.Second)
		for _, want := range []string{
			"2025-11-25          20         0         1         0         0",
			"2026-07-28          30         2         0         3         0",
			"total               50         2         1         3         0",
			"FAILED scenarios (1): 2026-07-28/ping",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("summary lacks %q:\n%s", want, s)
			}
		}
	})
}

// conformanceCluster is the deployment the suite runs against: every role
// its own process, two of each stateless one, behind a proxy of our own
// that sends each HTTP request to the other gateway than the last.
type conformanceCluster struct {
	url   string
	rr    *roundRobin
	procs []*proc
}

func conformanceStartCluster(t *testing.T, bin string) *conformanceCluster {
	t.Helper()
	c := &conformanceCluster{}
	broker := startProc(t, bin, "broker", "broker", "--broker-port", "0", "--data-dir", t.TempDir())
	brokers := broker.await(t, brokersRE, 60*time.Second)
	c.procs = append(c.procs, broker)
	for _, id := range []string{"p1", "p2"} {
		p := startProc(t, bin, id, "processor", "--brokers", brokers, "--instance-id", id)
		p.await(t, opsRE, 90*time.Second)
		c.procs = append(c.procs, p)
	}
	var gws []string
	for _, id := range []string{"g1", "g2"} {
		// Streams of calls running over a second are closed and resumed
		// (server-sse-polling), through the other gateway half the time.
		g := startProc(t, bin, id, "gateway", "--brokers", brokers, "--instance-id", id, "--listen", "127.0.0.1:0", "--sse-poll-after", "1s")
		gws = append(gws, g.await(t, mcpRE, 60*time.Second))
		c.procs = append(c.procs, g)
	}
	c.rr = newRoundRobin(gws...)
	c.rr.keepHost = true
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			// Host and Origin pass through untouched: the DNS-rebinding
			// scenario sends bad ones and the gateway must see them.
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "gateway" // the transport picks which
			r.Out.Host = r.In.Host
		},
		Transport:     c.rr,
		FlushInterval: -1, // SSE: every event at once
	})
	t.Cleanup(proxy.Close)
	c.url = proxy.URL + "/mcp"
	return c
}

// conformanceClientTransportError reports a run whose failures are the
// suite's own HTTP client losing its connection, not a server answer.
func conformanceClientTransportError(out string) bool {
	for _, m := range []string{"Error: Failed: terminated", "Error: Failed: fetch failed", "request failed: terminated"} {
		if strings.Contains(out, m) {
			return true
		}
	}
	return false
}
