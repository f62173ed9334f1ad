package redis

import "time"

// ProjectorMetrics receives what the projector does. ops/metrics adapts it
// to Prometheus; nil means no metrics.
type ProjectorMetrics interface {
	// BatchApplied is called after a batch is in Redis and committed:
	// records fetched, writes sent after collapsing a key's records to the
	// latest, how many of those were stale (the key was already at or past
	// the record), and how long Redis took (retries included).
	BatchApplied(records, writes, stale int, d time.Duration)
	// RedisFailed counts failed attempts to write a batch.
	RedisFailed()
	// RedisUp reports whether the last attempt reached Redis.
	RedisUp(up bool)
	// PartitionRebuilt counts partitions rewound to offset 0 because Redis
	// lost its data.
	PartitionRebuilt(partition int32)
	// RecordSkipped counts records that cannot be decoded (skipped, logged).
	RecordSkipped()
}

type nopMetrics struct{}

func (nopMetrics) BatchApplied(int, int, int, time.Duration) {}
func (nopMetrics) RedisFailed()                              {}
func (nopMetrics) RedisUp(bool)                              {}
func (nopMetrics) PartitionRebuilt(int32)                    {}
func (nopMetrics) RecordSkipped()                            {}
