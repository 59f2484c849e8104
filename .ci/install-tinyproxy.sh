#!/usr/bin/env bash
# Installs Debian's tinyproxy for the egress proxy tests
# (outbound/egress_test.go, internal/testproxy) when it is missing.
# Idempotent: does nothing when tinyproxy is on PATH or in /usr/bin. The
# package's own service is not started: the tests run their own instance,
# with a generated configuration, on a free 127.0.0.1 port.
set -euo pipefail

have() { command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ]; }
version() { "$(command -v tinyproxy || echo /usr/bin/tinyproxy)" -v 2>/dev/null | head -n1; }

if have; then
  echo "==> $(version)"
  exit 0
fi

echo "==> tinyproxy missing: apt-get install -y tinyproxy"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=300)
policy=/usr/sbin/policy-rc.d
added_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  added_policy=1
fi
cleanup() { if [ -n "$added_policy" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
apt-get "${apt_opts[@]}" update
apt-get "${apt_opts[@]}" install -y --no-install-recommends tinyproxy
have || { echo "error: tinyproxy still missing after the install" >&2; exit 1; }
echo "==> $(version)"
