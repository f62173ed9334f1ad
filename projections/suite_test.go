package projections_test

import (
	"os"
	"testing"

	"github.com/mcpstream/mcpstream/projections/projectionstest"
)

func TestMain(m *testing.M) {
	projectionstest.RunChildIfAsked()
	os.Exit(m.Run())
}

// The shared projection suite, once per store backend: native hash
// partitions in one database, the consistent-hash router over three
// databases, and Citus (skipped, reported as not run, where the extension
// is not installed).
func TestSuite(t *testing.T) {
	for _, b := range projectionstest.Backends() {
		t.Run(b.Name, func(t *testing.T) { projectionstest.RunSuite(t, b) })
	}
}
