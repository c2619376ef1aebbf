# Tempest's two everyday commands are `make dev` and `make test`.
GO ?= go

.PHONY: dev test bench build

dev:
	$(GO) run ./cmd/tempest dev

build:
	$(GO) build -o tempest ./cmd/tempest

# Needs a redis-server (REDIS_URL, default redis://127.0.0.1:6379/0), node and npm.
test: e2e/js/node_modules/.installed
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 ./...

e2e/js/node_modules/.installed: e2e/js/package.json e2e/js/package-lock.json
	cd e2e/js && npm ci --no-audit --no-fund
	touch $@

bench:
	$(GO) run ./cmd/tempest bench
