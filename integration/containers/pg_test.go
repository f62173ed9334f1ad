//go:build containers

package containers

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// dumpTables reads every row of each table as text, in primary-key order.
func dumpTables(t *testing.T, ctx context.Context, dsn string, tables []string) map[string][]string {
	t.Helper()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	out := map[string][]string{}
	for _, tb := range tables {
		rows, err := c.Query(ctx, "SELECT t::text FROM "+tb+" t ORDER BY 1")
		if err != nil {
			t.Fatalf("dumping %s: %v", tb, err)
		}
		list, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("dumping %s: %v", tb, err)
		}
		out[tb] = list
	}
	return out
}

func execSQL(t *testing.T, ctx context.Context, dsn, sql string) {
	t.Helper()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
