#!/usr/bin/env bash
# Installs Debian's pgbouncer for the pooler test (server/pgbouncer_test.go,
# internal/pgbouncer) and `webhookd bench -pgbouncer` when it is missing.
# Idempotent: does nothing when pgbouncer is on PATH or in /usr/sbin. The
# package's own service is not started: the test and the bench run their
# own instance, with a generated ini, on a free 127.0.0.1 port.
# Waits for another apt/dpkg run to release its lock rather than failing.
set -euo pipefail

have() { command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; }
version() { "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" --version 2>/dev/null | head -n1; }

if have; then
  echo "==> $(version)"
  exit 0
fi

echo "==> pgbouncer missing: apt-get install -y pgbouncer"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=300)
# Keep the package's service from starting (a system pgbouncer on 6432).
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
apt-get "${apt_opts[@]}" install -y --no-install-recommends pgbouncer
have || { echo "error: pgbouncer still missing after the install" >&2; exit 1; }
echo "==> $(version)"
