// Package metrics declares every Prometheus metric of mcpstream in one
// place and adapts them to the small observer interfaces the domain
// packages declare (gateway.Metrics, executor observe hooks), so those
// packages never import Prometheus. Consumer lag is collected on scrape
// from the brokers (kadm), per group and partition.
package metrics
