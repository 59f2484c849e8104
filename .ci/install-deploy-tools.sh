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

# The helm release the chart is checked with. Bump it here only.
HELM_VERSION=v4.3.2

gobin="$(go env GOPATH)/bin"
helm="$gobin/helm"
if [ -x "$helm" ] && go version -m "$helm" 2>/dev/null | grep -q "mod[[:space:]]*helm.sh/helm/v4[[:space:]]*$HELM_VERSION"; then
  echo "==> helm $HELM_VERSION: $helm"
else
  echo "==> helm $HELM_VERSION is missing: go install helm.sh/helm/v4/cmd/helm@$HELM_VERSION (into $gobin)"
  # Outside the module: helm's dependencies stay out of webhookd's go.mod.
  (cd / && GOBIN="$gobin" GOFLAGS=-mod=mod go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION")
fi

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
