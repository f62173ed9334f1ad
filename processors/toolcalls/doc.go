// Package toolcalls is the goka group that owns the tool-call table, keyed
// by request event id. It is where "no tool runs twice for one request" is
// decided: the first tools/call event for an event id dispatches a job to
// the executors; a duplicate (client retry, gateway produced twice, a
// client producing straight into Kafka) while the call runs joins the
// waiters; a duplicate after completion is answered from the table. Results
// from executors complete the call and answer every waiter once.
//
// Start from New and Processor.Run; OnCall and OnResult are the pure
// decision functions the unit tests drive.
package toolcalls
