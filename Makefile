# The two commands a newcomer needs: `make run` and `make test`.
.PHONY: run test build emulator temporal-cli fmt vet clean

run: ## the local stack: PostgreSQL, Temporal dev server + Web UI, emulator, worker, demo jobs
	bash scripts/install-deps.sh && go build -o .stack/bin/localstack ./cmd/localstack && exec .stack/bin/localstack

test: ## every test, both tiers, as CI runs them
	bash scripts/test.sh

build: ## the binaries, into bin/
	go build -o bin/ ./worker ./starter ./cmd/emulator ./cmd/localstack

emulator: ## the Chamelaion emulator alone, on 127.0.0.1:8090
	go run ./cmd/emulator

temporal-cli: ## the pinned Temporal CLI, built once into ~/.cache/lipsync
	bash scripts/build-temporal.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	go vet ./...

clean:
	rm -rf bin .stack
