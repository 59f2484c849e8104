# webhookd development tasks. `make` or `make help` lists them; the README
# uses the same commands.

GO ?= go
# Tests get a PostgreSQL from pgtmp: TEST_DATABASE_URL, DATABASE_URL, a server
# at 127.0.0.1:5432, or a throwaway cluster it starts and stops itself.
PGTMP := $(GO) run ./internal/pgcluster/cmd/pgtmp --

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: test
test: ## Run every test with -race against PostgreSQL (starts a throwaway one if needed)
	$(PGTMP) $(GO) test -race -count=1 -timeout 15m ./...

# TestFIFOThreeWorkersKill is left to `make test`: it gives its processes
# their whole environment (serveEnv, DATABASE_URL included), so an exported
# one can't reach them, and running its 2,000-event line a second time
# (~4 minutes, the longest test) would check nothing more.
.PHONY: test-devenv
test-devenv: ## Run the cmd tests with DATABASE_URL exported, as a developer running `webhookd dev` may have it
	$(PGTMP) sh -c 'DATABASE_URL="$$TEST_DATABASE_URL" $(GO) test -count=1 -timeout 10m -skip "^TestFIFOThreeWorkersKill$$" ./cmd/...'

.PHONY: vet
vet: lint ## Run go vet, fail on files gofmt would change, and run golangci-lint
	$(GO) vet ./...
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# golangci-lint with .golangci.yaml, the version pinned in .ci/install-lint.sh
# (installed there on first use).
GOLANGCI_LINT := $(shell $(GO) env GOPATH)/bin/golangci-lint

.PHONY: lint
lint: ## Run golangci-lint (.golangci.yaml; installs the pinned version if missing)
	@.ci/install-lint.sh >/dev/null
	$(GOLANGCI_LINT) run ./...

.PHONY: build
build: ## Build bin/webhookd
	$(GO) build -o bin/webhookd ./cmd/webhookd

.PHONY: dev
dev: ## Run `webhookd dev`: API and workers in one process, for local development
	$(GO) run ./cmd/webhookd dev

.PHONY: bench
bench: ## Run `webhookd bench`: the six delivery scenarios, one table (see BENCHMARKS.md)
	$(PGTMP) sh -c 'DATABASE_URL="$$TEST_DATABASE_URL" $(GO) run ./cmd/webhookd bench'

.PHONY: bench-go
bench-go: ## Run the go test benchmarks (the 1M-delivery listing benchmark among them)
	$(PGTMP) $(GO) test -run '^$$' -bench . ./...

.PHONY: compose-check
compose-check: ## Validate docker-compose.yml
	@if command -v docker-compose >/dev/null 2>&1; then docker-compose config -q; else docker compose config -q; fi

.PHONY: deploy-tools
deploy-tools: ## Install what deploy-check needs: helm (pinned, from the Go module proxy), promtool, docker-compose
	.ci/install-deploy-tools.sh

.PHONY: deploy-check
deploy-check: ## Lint and render the Helm chart and check it, unit-test the alert rules, check the Grafana dashboard (deploy/)
	$(GO) test -count=1 -v ./deploy

.PHONY: drill
drill: ## Run the full reliability drills and print their table (see RELIABILITY.md)
	$(PGTMP) $(GO) test -count=1 -v -timeout 60m -run '^TestDrill$$' ./drill -args -drill.full

# The API reference, internal/admin/apidocs/index.html (served at /docs), is rendered
# from internal/admin/openapi.json by @redocly/cli, pinned with its integrity hash in
# internal/admin/apidocs/package-lock.json and installed there by `npm ci`.
APIDOCS := internal/admin/apidocs
REDOCLY := REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true $(APIDOCS)/node_modules/.bin/redocly

# apidocs-render writes the page to $(1): one self-contained file, scripts
# and styles inline. The sed drops the one thing it would load from
# elsewhere, Redocly's logo from cdn.redoc.ly (its <img> hides itself when
# it fails to load).
apidocs-render = $(REDOCLY) build-docs internal/admin/openapi.json --config $(APIDOCS)/redocly.yaml \
	--template $(APIDOCS)/template.hbs --inlineBundle --title 'webhookd API reference' -o $(1).raw && \
	sed -e 's\#https://cdn\.redoc\.ly/redoc/logo-mini[a-z-]*\.svg\#data:,\#g' $(1).raw > $(1) && rm -f $(1).raw

$(APIDOCS)/node_modules/.package-lock.json: $(APIDOCS)/package.json $(APIDOCS)/package-lock.json
	cd $(APIDOCS) && npm ci --no-audit --no-fund --loglevel=error

.PHONY: docs
docs: $(APIDOCS)/node_modules/.package-lock.json ## Render the API reference internal/admin/apidocs/index.html (served at /docs) from internal/admin/openapi.json
	$(call apidocs-render,$(APIDOCS)/index.html)

.PHONY: docs-check
docs-check: $(APIDOCS)/node_modules/.package-lock.json ## Lint internal/admin/openapi.json and fail if internal/admin/apidocs/index.html is stale
	$(REDOCLY) lint --config $(APIDOCS)/redocly.yaml --format=stylish internal/admin/openapi.json
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	{ $(call apidocs-render,$$tmp/index.html); } >/dev/null 2>&1 || { echo "error: rendering the API reference failed: run \`make docs\` to see why"; exit 1; }; \
	if ! cmp -s "$$tmp/index.html" $(APIDOCS)/index.html; then \
	  echo "error: $(APIDOCS)/index.html is stale against internal/admin/openapi.json: run \`make docs\` and commit it"; exit 1; \
	fi; \
	echo "$(APIDOCS)/index.html is up to date"
