# The two commands in the README: `make dev` runs the whole system on embedded
# defaults, `make test` runs the tests. Everything else supports those two.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
TEMPORAL := $(BIN)/temporal
MAINS := worker starter metasim

export GOFLAGS ?= -buildvcs=false

.PHONY: all build dev test fuzz chaos test-short evidence-hour bench lint fmt clean

all: build

## build: the worker, starter and metasim binaries, and the Temporal CLI, into bin/
build: $(addprefix $(BIN)/,$(MAINS)) $(TEMPORAL)

$(BIN)/worker: FORCE
	$(GO) build -o $@ ./worker
$(BIN)/starter: FORCE
	$(GO) build -o $@ ./starter
$(BIN)/metasim: FORCE
	$(GO) build -o $@ ./metasim

# The Temporal CLI (dev server and operator commands) is pinned in its own
# module: its server code conflicts with the SDK's api version. The first
# build takes minutes; later ones are cached.
$(TEMPORAL): tools/go.mod tools/go.sum
	$(GO) build -modfile=tools/go.mod -o $@ github.com/temporalio/cli/cmd/temporal

## dev: Temporal dev server + Web UI, metasim, worker, schedule and a trickle of demo claims (Ctrl-C stops all)
dev: build
	./scripts/dev.sh

## test: unit and integration tests (real dev server, metasim, SQLite; PostgreSQL when TEST_DATABASE_URL is set)
# -p 1: one package at a time. Two packages each running a dev server, a
# worker and metasim at 120x (workflows/ and the bench smoke) would share the
# 2 cores, and the limiter's budget-use test measures pacing in wall time.
test: $(TEMPORAL)
	TEMPORAL_CLI=$(abspath $(TEMPORAL)) $(GO) test -p 1 -count=1 -timeout 14m ./...
	@$(MAKE) --no-print-directory fuzz

## fuzz: each fuzz target for FUZZTIME (default 5s; `make test` runs this after
## the tests, which already replay the committed seed corpora). A crash is
## written to the package's testdata/fuzz/ and fails the run: commit it.
# The cached corpus is cleared first: -fuzztime counts its replay too, and a
# grown cache would leave no time for fuzzing. -fuzzminimizetime=0: minimizing
# each new input would stall a short run. Go's fuzzer can end a run with
# "context deadline exceeded" when -fuzztime runs out while a worker is busy
# (nothing found, nothing written): such a run is tried once more; a crash
# always fails.
FUZZ_TARGETS := ./internal/claim:FuzzParseClaim ./internal/claim:FuzzReadLines \
	./internal/webhook:FuzzWebhookParse ./internal/webhook:FuzzWebhookSignature \
	./internal/webhook:FuzzWebhookHandshake ./internal/graph:FuzzGraphResponse
FUZZTIME ?= 5s
fuzz:
	@mkdir -p $(BIN); rm -rf "$$($(GO) env GOCACHE)/fuzz/github.com/socialproof/verifier"
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($(FUZZTIME))"; \
		for try in 1 2; do \
			if $(GO) test -run='^$$' -fuzz="^$${t#*:}\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=0 -parallel=1 "$${t%%:*}" > $(BIN)/fuzz.log 2>&1; then break; fi; \
			if [ $$try = 1 ] && grep -q 'context deadline exceeded' $(BIN)/fuzz.log && ! grep -q 'Failing input written' $(BIN)/fuzz.log; then echo "  (fuzzer timed out with nothing found: once more)"; continue; fi; \
			cat $(BIN)/fuzz.log; exit 1; \
		done; \
	done

## evidence-hour: the grouped-evidence scenario over a whole platform hour
## (20,000 comment claims, with and without webhooks): what is decided, with
## what evidence, one platform hour after the last arrival; each variant in
## its own process, so neither runs beside the other's shutdown (logs in bin/)
evidence-hour: $(TEMPORAL)
	@mkdir -p $(BIN)
	@rc=0; for variant in with_webhooks without_webhooks; do \
		EVIDENCE_MINUTES=60 TEMPORAL_CLI=$(abspath $(TEMPORAL)) $(GO) test -count=1 -timeout 30m \
			-run "TestGroupedReadsAndWebhooksProveClaimsUnderThePlansBudget/$$variant" -v ./workflows > $(BIN)/evidence-hour-$$variant.log 2>&1 || rc=1; \
		grep -E 'FIGURES|calls by|webhooks:|want|^\s*(--- |ok|FAIL)' $(BIN)/evidence-hour-$$variant.log; \
	done; exit $$rc

## bench: the engine against the user's plan (seed-baseline) on the same
## seeded workload: steady, viral, drain and cost growth; prints the table and
## writes out/bench/ (report.json, report.md, a chart per scenario). Postgres
## when TEST_DATABASE_URL is set; BENCH_FLAGS passes flags (go run ./bench -h)
bench: $(TEMPORAL)
	$(GO) run ./bench -temporal-cli $(abspath $(TEMPORAL)) $(BENCH_FLAGS)

## chaos: the chaos suite on the real dev server, PostgreSQL, metasim and the
## worker binary (20,000 claims per scenario, about 18 minutes): prints a table
## per scenario and writes out/chaos/report.json. PostgreSQL from
## TEST_DATABASE_URL (default: this machine's); CHAOS_FLAGS passes flags
## (go run ./chaos -h). `make test` runs a short version (TestShortChaos).
chaos: $(TEMPORAL)
	TEST_DATABASE_URL="$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}" \
		$(GO) run ./chaos -temporal-cli $(abspath $(TEMPORAL)) $(CHAOS_FLAGS)

## lint: go vet, gofmt and workflowcheck (workflow determinism)
lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) build -modfile=tools/workflowcheck/go.mod -o $(BIN)/workflowcheck go.temporal.io/sdk/contrib/tools/workflowcheck
	$(BIN)/workflowcheck ./workflows/... ./limiter/... ./internal/governor/... ./internal/tokens/...

clean:
	rm -rf $(BIN) .data

FORCE:
