# mcpstream: see README.md.
GO ?= go
GOFLAGS ?=
PKGS := ./...

.PHONY: run build test unit conformance-deps upstreams-deps integration bench vet fmt-check clean

## run: the whole platform on the embedded broker (data in ./data); prints the MCP URL
run:
	$(GO) run ./cmd/mcpstream run

## build: the mcpstream binary into ./bin
build:
	CGO_ENABLED=0 $(GO) build -o bin/mcpstream ./cmd/mcpstream

## test: every test (unit, end-to-end on kfake, official conformance suite), with -race;
## with MCPSTREAM_CONTAINERS=1 (.ci/run sets it) also the container suite. In CI (CI set) without
## it, make test fails: a container suite that silently did not run must not pass.
test: conformance-deps upstreams-deps vet fmt-check
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	@if [ "$${MCPSTREAM_CONTAINERS:-}" = 1 ]; then $(MAKE) --no-print-directory integration; \
	elif [ -n "$${CI:-}" ]; then echo "make test: CI is set but MCPSTREAM_CONTAINERS is not 1: the container suite would not run" >&2; exit 1; \
	else echo "make test: container suite not run (MCPSTREAM_CONTAINERS=1 runs it; needs a Docker engine, see integration/containers/README.md)"; fi

## unit: the fast tests only (no conformance suite install)
unit:
	$(GO) test -race -count=1 -short ./schemas/... ./streams/... ./jsonrpc/... ./tools ./tools/conformance ./processors/... ./gateway/...

## integration: the container suite (needs a Docker engine: ops/images/engine.sh starts one; builds local
## images; fails if any of its tests is skipped or missing); see integration/containers/README.md
integration:
	GO=$(GO) bash integration/containers/run.sh

conformance-deps:
	ops/conformance/install.sh >/dev/null

upstreams-deps:
	ops/upstreams/install.sh >/dev/null

## bench: load test, mcpstream all-in-one vs the go-sdk reference server, same load generator; executor scaling (1-3 executors, 20 ms tool)
bench:
	$(GO) run ./cmd/mcpstream bench -sessions $${SESSIONS:-8} -duration $${DURATION:-10s}
	$(GO) test -run '^$$' -bench BenchmarkReplay -benchtime 1x ./projections/
	$(GO) test -run '^$$' -bench FederatedVsDirect -benchtime 4000x ./tools/upstream/
	MCPSTREAM_BENCH_EXECUTOR_MODES=$${EXECUTOR_MODES:-share,group} $(GO) test -run '^$$' -bench BenchmarkExecutors -benchtime 1x -timeout 10m ./ops/bench/

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

clean:
	rm -rf bin data
