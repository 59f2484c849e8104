#!/usr/bin/env bash
# Installs golangci-lint (`make lint`, part of `make vet`), pinned below,
# built from the Go module proxy into $(go env GOPATH)/bin when that exact
# version is missing. Idempotent.
set -euo pipefail
# shellcheck source=apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

# The golangci-lint release .golangci.yaml is written for. Bump it here only.
GOLANGCI_LINT_VERSION=v2.15.0

go_install_pinned golangci-lint github.com/golangci/golangci-lint/v2 github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION"
