package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/projections/projectionstest"
	"github.com/mcpstream/mcpstream/schemas"
)

// captureStdout runs f with os.Stdout going to a file and returns what it
// printed.
func captureStdout(t *testing.T, f func() error) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = tmp
	ferr := f()
	os.Stdout = old
	if ferr != nil {
		t.Fatal(ferr)
	}
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The projection commands end to end: topics, projector, lag, replay.
func TestProjectionCommands(t *testing.T) {
	reg := schemas.MustLoad()
	l := projectionstest.NewLog(t, 4)
	brokers := "--brokers=" + strings.Join(l.Streams.Brokers, ",")
	dsn := projectionstest.NewDatabase(t)
	common := []string{brokers, "--partitions=4", "--pg-dsn=" + dsn, "--log-level=warn"}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	out := captureStdout(t, func() error {
		return runTopics(ctx, []string{brokers, "--partitions=4", "--create", "--log-level=warn"})
	})
	if !strings.Contains(out, "mcpstream-sessions-table") || !strings.Contains(out, "compact") || strings.Contains(out, "missing") {
		t.Errorf("topics:\n%s", out)
	}

	recs := projectionstest.Workload{Sessions: 40, Seed: "cmd"}.Records(t, l.Streams.Topics, reg)
	l.Produce(t, recs)
	st, err := projections.Open(ctx, projections.StoreConfig{DSNs: []string{dsn}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runProjector(pctx, append(common, "--instance-id=cmdtest")) }()
	projectionstest.WaitCaughtUp(t, st, l, "", 30*time.Second)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	projectionstest.Check(t, st, "", reg, l.Streams.Topics, recs, nil)

	out = captureStdout(t, func() error { return runLag(ctx, common) })
	if !strings.Contains(out, "projector:sessions") || !strings.Contains(out, "mcpstream-projector") {
		t.Errorf("lag:\n%s", out)
	}

	before, err := st.Dump(ctx, projections.ToolCalls, "")
	if err != nil {
		t.Fatal(err)
	}
	out = captureStdout(t, func() error { return runReplay(ctx, append(common, "--progress-every=1ms")) })
	for _, want := range []string{"starting rebuild", "events/s", "ETA", "swapped in"} {
		if !strings.Contains(out, want) {
			t.Errorf("replay output lacks %q:\n%s", want, out)
		}
	}
	after, err := st.Dump(ctx, projections.ToolCalls, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Error("replayed tool_calls differ from the live ones")
	}
	if _, err := parseFrom("yesterday"); err == nil {
		t.Error("--from yesterday accepted")
	}
	if ts, err := parseFrom("1760000000000"); err != nil || ts.UnixMilli() != 1760000000000 {
		t.Errorf("--from millis: %v %v", ts, err)
	}
}
