// Package counting is the built-in provider named "counting": two tools
// whose bodies record every execution in an append-only log file, so a test
// can count, from the tool's own side, how many times each call ran.
//
// tally is declared non-idempotent (annotations.idempotentHint false) and
// tally_idempotent idempotent; both take a required call_id and an optional
// sleep_ms. The first thing either body does is append "<call_id>\n" to the
// log with one write(2) on a file opened O_APPEND: such small appends are
// atomic between processes sharing the file, and once write returns the
// line is in the page cache, so it survives a SIGKILL of the writer. Then
// the tool sleeps sleep_ms and returns ResultText(call_id).
//
// ReadCounts turns the log back into executions per call_id. The provider
// is off unless configured (--counting-tool-log): it exists for the chaos
// test and the executor benchmark, not for users.
package counting
