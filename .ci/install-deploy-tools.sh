#!/usr/bin/env bash
# Installs the tools the deployment checks need (deploy/*_test.go, `make
# deploy-check`, `make compose-check`) when they are missing. Idempotent:
# installs nothing that is already there.
#
#   helm            v4, pinned below, built from the Go module proxy into
#                   $(go env GOPATH)/bin (where deploy's tests look first)
#   promtool        Debian's prometheus package (only its promtool is
#                   used)
#   docker-compose  Debian's docker-compose package, for `docker-compose
#                   config -q` (no Docker engine needed)
#
# Waits for another apt/dpkg run to release its lock rather than failing.
set -euo pipefail
# shellcheck source=apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

# The helm release the chart is checked with. Bump it here only.
HELM_VERSION=v4.3.2

go_install_pinned helm helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm "$HELM_VERSION"

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> missing: ${missing[*]}: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-o DPkg::Lock::Timeout=300)
  apt-get "${apt_opts[@]}" update
  apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}"
fi
echo "==> $(promtool --version 2>&1 | head -n1)"
echo "==> $(docker-compose version 2>&1 | head -n1)"
