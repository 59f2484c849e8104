#!/usr/bin/env bash
# Installs golangci-lint (`make lint`, part of `make vet`), pinned below,
# built from the Go module proxy into $(go env GOPATH)/bin when that exact
# version is missing. Idempotent.
set -euo pipefail

# The golangci-lint release .golangci.yaml is written for. Bump it here only.
GOLANGCI_LINT_VERSION=v2.15.0

gobin="$(go env GOPATH)/bin"
lint="$gobin/golangci-lint"
if [ -x "$lint" ] && go version -m "$lint" 2>/dev/null | grep -q "mod[[:space:]]*github.com/golangci/golangci-lint/v2[[:space:]]*$GOLANGCI_LINT_VERSION"; then
  echo "==> golangci-lint $GOLANGCI_LINT_VERSION: $lint"
else
  echo "==> golangci-lint $GOLANGCI_LINT_VERSION is missing: go install (into $gobin)"
  # Outside the module: the linter's dependencies stay out of webhookd's go.mod.
  (cd / && GOBIN="$gobin" GOFLAGS=-mod=mod go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION")
fi
