// Package streams owns mcpstream's Kafka side: topic names and layouts,
// record keys and event ids, the partitioner every producer must share with
// goka, the franz-go client settings for request/reply latency and
// durability, the sarama settings handed to goka, and the embedded kfake
// broker.
//
// Start from Topics (what exists and how it is partitioned), NewClient (a
// producer/consumer configured for the platform) and Broker (the embedded
// Kafka-protocol broker behind `mcpstream run`).
package streams
