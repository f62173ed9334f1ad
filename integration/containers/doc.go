// Package containers is the container suite: the platform as a cluster of
// containers started with testcontainers-go (a broker, two gateways, two
// processors with executors, a projector, PostgreSQL, Redis on a private
// network), with failures injected through the Docker API. Its tests carry
// the build tag "containers"; see README.md for how to run them, on local
// images (ops/images/build.sh) or on official ones.
package containers
