// Package executor runs tool jobs outside the goka partition callbacks, so a
// slow tool never holds up other sessions. An Executor consumes the jobs
// topic in the executors consumer group, runs each job concurrently (up to
// Config.Concurrency) through the tools.Registry, sends the job's progress
// and log notifications straight to the waiting gateway, and reports the
// result on the tool-results topic, where the toolcalls group completes the
// call.
//
// Ordering: a job's notifications are acknowledged by Kafka before its
// result is produced, so they precede the final response in the gateway's
// reply partition. Offsets are committed only up to the lowest job still
// running in each partition (at-least-once; the toolcalls table makes a
// re-run's result a no-op for the caller).
package executor
