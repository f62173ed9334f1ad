// Package processors holds what the goka processor groups share: goka codecs
// over the Avro schemas, and the protocol constants both groups answer with.
// Each group lives in its own subpackage: sessions (the session table, and
// the entry point of every request), toolcalls (the tool-call table and
// exactly-once dispatch of jobs) and executor (runs jobs; not a goka group).
package processors
