package main

import (
	"flag"
	"testing"
)

// Every flag can be set as MCPSTREAM_<FLAG>; a flag on the command line
// wins over the environment.
func TestParseEnvDefaults(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "")
	maxBody := fs.Int64("max-body-bytes", 1, "")
	listen := fs.String("listen", "default", "")
	t.Setenv("MCPSTREAM_BROKERS", "k1:9092,k2:9092")
	t.Setenv("MCPSTREAM_MAX_BODY_BYTES", "1024")
	t.Setenv("MCPSTREAM_LISTEN", "from-env")
	if err := parse(fs, []string{"--listen", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if *brokers != "k1:9092,k2:9092" || *maxBody != 1024 || *listen != "from-flag" {
		t.Fatalf("brokers=%q maxBody=%d listen=%q", *brokers, *maxBody, *listen)
	}
	if got := splitList(*brokers); len(got) != 2 || got[1] != "k2:9092" {
		t.Fatalf("splitList = %v", got)
	}

	fs = flag.NewFlagSet("y", flag.ContinueOnError)
	fs.Int64("max-body-bytes", 1, "")
	t.Setenv("MCPSTREAM_MAX_BODY_BYTES", "lots")
	if err := parse(fs, nil); err == nil {
		t.Fatal("a malformed MCPSTREAM_ variable was accepted")
	}
}
