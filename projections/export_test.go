package projections

// Internals the external tests look at.

// CreateTableSQL is the DDL of a projection's table set in a layout.
func CreateTableSQL(projection, gen string, layout Layout, partitions int) []string {
	return createTable(specs[projection], tableName(projection, gen), layout, partitions)
}

// MigrationSQL is every migration's statements in a layout.
func MigrationSQL(layout Layout, partitions int) []string {
	var out []string
	for _, m := range migrations {
		out = append(out, m.stmts(layout, partitions)...)
	}
	return out
}
