# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
.PHONY: run test faults bench bench-cluster bench-memory bench-rate bench-paging fuzz build emulator temporal-cli temporal-server fmt vet clean

run: ## the local stack: PostgreSQL, Temporal dev server + Web UI, emulator, worker, demo jobs (CLUSTER=1: Temporal as production runs it)
	bash scripts/install-deps.sh && go build -o .stack/bin/localstack ./cmd/localstack && exec .stack/bin/localstack $(if $(CLUSTER),--cluster)

test: ## every test, both tiers, as CI runs them
	bash scripts/test.sh

faults: ## the fault-injection suites alone, on the dev server and on the cluster, printing their tables (FAULT_JOBS=2000 CLUSTER_FAULT_JOBS=1000 for a soak run)
	TEMPORAL_CLI=$$(bash scripts/build-temporal.sh) TEMPORAL_SERVER_DIR=$$(bash scripts/build-temporal-server.sh) \
		LIPSYNC_FAULT_JOBS=$${FAULT_JOBS:-200} LIPSYNC_CLUSTER_FAULT_JOBS=$${CLUSTER_FAULT_JOBS:-150} \
		go test -tags integration -count=1 -timeout 3h -run '^TestFaults(Cluster)?$$' -v ./integration/ 2>&1 | grep -E '^\s*(\||---|ok|FAIL|PASS)|vendor jobs over'

bench: ## this worker against the alternatives, then on the dev server and the cluster side by side (about 20 minutes): writes docs/benchmarks.md and docs/benchmarks-latency.svg
	bash scripts/install-deps.sh && TEMPORAL_CLI=$$(bash scripts/build-temporal.sh) TEMPORAL_SERVER_DIR=$$(bash scripts/build-temporal-server.sh) \
		go run ./bench --out docs/benchmarks.md --svg docs/benchmarks-latency.svg

bench-cluster: ## the backends phase alone (about 7 minutes): the timer sample and this worker on the dev server and on the cluster, writes docs/benchmarks-backends.md
	bash scripts/install-deps.sh && TEMPORAL_CLI=$$(bash scripts/build-temporal.sh) TEMPORAL_SERVER_DIR=$$(bash scripts/build-temporal-server.sh) \
		go run ./bench --phases backends --out docs/benchmarks-backends.md

bench-memory: ## the worker's memory with 10,000 jobs in flight (about 9 minutes): writes docs/benchmarks-memory.md
	bash scripts/install-deps.sh && TEMPORAL_CLI=$$(bash scripts/build-temporal.sh) go run ./bench --phases memory --strategies ours --inflight 10000 --out docs/benchmarks-memory.md

bench-rate: ## the rate-budget benchmark: two workers, a 600/min budget, 600 jobs
	TEMPORAL_CLI=$$(bash scripts/build-temporal.sh) \
		go test -tags integration -run XXX -bench RateBudget -benchtime 1x ./integration/ 2>&1 | grep -E '^\||Benchmark|ok|FAIL'

bench-paging: ## a --worker-file batch paged through the worker (abort after the first window): time and worker peak RSS per size (PAGING_ROWS, default 50000,100000,200000; about 15 minutes)
	TEMPORAL_CLI=$$(bash scripts/build-temporal.sh) \
		go test -tags integration -run XXX -bench BatchPaging -benchtime 1x -timeout 3h ./integration/ 2>&1 | grep -E '^\||Benchmark|ok|FAIL'
	go test -run XXX -bench PageThroughBatchFile -benchtime 1x ./activities/ | grep -E 'Benchmark|ok|FAIL'

fuzz: ## every fuzz target for FUZZTIME (default 60s) each
	for t in "FuzzParse ./batchfile/" "FuzzParseAPIError ./chamelaion/" "FuzzDecodeRequest ./chamelaion/" "FuzzRedact ./chamelaion/" "FuzzWriteResults ./starter/" "FuzzValidateInput ./workflows/"; do \
		set -- $$t; go test -run XXX -fuzz "^$$1\$$" -fuzztime $${FUZZTIME:-60s} $$2 || exit 1; done

build: ## the binaries, into bin/
	go build -o bin/ ./worker ./starter ./cmd/emulator ./cmd/localstack

emulator: ## the Chamelaion emulator alone, on 127.0.0.1:8090
	go run ./cmd/emulator

temporal-cli: ## the pinned Temporal CLI, built once into ~/.cache/lipsync
	bash scripts/build-temporal.sh

temporal-server: ## the pinned Temporal server, its SQL tool and the Web UI server (the cluster backend), built once into ~/.cache/lipsync
	bash scripts/build-temporal-server.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	go vet ./...

clean:
	rm -rf bin .stack
