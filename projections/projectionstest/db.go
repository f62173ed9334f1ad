// Package projectionstest is the shared kit of the projection tests: fresh
// PostgreSQL databases per test, an in-process broker, a realistic workload
// encoded and partitioned like production, the rows it must produce, and
// the suite every store backend runs (RunSuite).
package projectionstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// AdminDSN is the local PostgreSQL the tests create their databases in.
// MCPSTREAM_TEST_PG overrides it.
func AdminDSN() string {
	if v := os.Getenv("MCPSTREAM_TEST_PG"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func withDB(dsn, db string) string {
	// Replace the path of a URL DSN.
	i := strings.Index(dsn, "://")
	rest := dsn[i+3:]
	j := strings.IndexByte(rest, '/')
	q := ""
	if k := strings.IndexByte(rest, '?'); k >= 0 {
		q = rest[k:]
	}
	if j < 0 {
		return dsn[:i+3] + rest + "/" + db + q
	}
	return dsn[:i+3] + rest[:j] + "/" + db + q
}

func admin(ctx context.Context, t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, AdminDSN())
	if err != nil {
		t.Fatalf("connecting to the test PostgreSQL at %s (start it, or set MCPSTREAM_TEST_PG): %v", AdminDSN(), err)
	}
	return conn
}

// NewDatabase creates an empty database with a unique name, dropped when
// the test ends, and returns its DSN.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := admin(ctx, t)
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("mcpstream_t_%d_%s", os.Getpid(), hex.EncodeToString(b[:]))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, AdminDSN())
		if err != nil {
			t.Errorf("dropping database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping database %s: %v", name, err)
		}
	})
	return withDB(AdminDSN(), name)
}

// CitusAvailable reports whether the citus extension can be created on the
// test PostgreSQL.
func CitusAvailable(t testing.TB) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := admin(ctx, t)
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'citus')").Scan(&ok); err != nil {
		t.Fatalf("looking for citus: %v", err)
	}
	return ok
}
