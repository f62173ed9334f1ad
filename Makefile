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

## test: every test (unit, end-to-end on kfake, official conformance suite), with -race
test: conformance-deps upstreams-deps vet fmt-check
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## unit: the fast tests only (no conformance suite install)
unit:
	$(GO) test -race -count=1 -short ./schemas/... ./streams/... ./jsonrpc/... ./tools ./tools/conformance ./processors/... ./gateway/...

## integration: the container suite (needs a Docker engine; builds local images); see integration/containers/README.md
integration:
	ops/images/build.sh
	TESTCONTAINERS_RYUK_DISABLED=$${TESTCONTAINERS_RYUK_DISABLED:-true} $(GO) test -race -tags containers -count=1 -timeout 30m -v ./integration/containers/

conformance-deps:
	ops/conformance/install.sh >/dev/null

upstreams-deps:
	ops/upstreams/install.sh >/dev/null

## bench: load test, mcpstream all-in-one vs the go-sdk reference server, same load generator
bench:
	$(GO) run ./cmd/mcpstream bench -sessions $${SESSIONS:-8} -duration $${DURATION:-10s}
	$(GO) test -run '^$$' -bench BenchmarkReplay -benchtime 1x ./projections/
	$(GO) test -run '^$$' -bench FederatedVsDirect -benchtime 4000x ./tools/upstream/

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

clean:
	rm -rf bin data
