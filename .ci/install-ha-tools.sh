#!/usr/bin/env bash
# Installs Debian's etcd-server, patroni (with its etcd client, python3-etcd)
# and haproxy for the failover drill (drill/failover_test.go,
# internal/hacluster) when they are missing. Idempotent: does nothing when
# etcd, patroni, patronictl and haproxy are all there. The packages' own
# services are not started (the drill runs its own, on 127.0.0.x ports).
# Waits for another apt/dpkg run to release its lock rather than failing.
set -euo pipefail

have_all() {
  command -v etcd >/dev/null 2>&1 && command -v patroni >/dev/null 2>&1 &&
    command -v patronictl >/dev/null 2>&1 && command -v haproxy >/dev/null 2>&1 &&
    /usr/bin/python3 -c 'import etcd' >/dev/null 2>&1 # Debian's patroni runs under /usr/bin/python3
}

if have_all; then
  echo "==> HA tools: etcd $(etcd --version 2>/dev/null | head -n1 | awk '{print $3}'), $(patroni --version 2>/dev/null), $(haproxy -v 2>/dev/null | head -n1 | awk '{print $1, $3}')"
  exit 0
fi

echo "==> HA tools missing: apt-get install -y etcd-server patroni python3-etcd haproxy"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=300)
# Keep the packages' services from starting (a system etcd on 2379, a
# haproxy with the default config): the drill starts its own.
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
apt-get "${apt_opts[@]}" install -y --no-install-recommends etcd-server patroni python3-etcd haproxy
have_all || { echo "error: etcd, patroni, patronictl, haproxy or python3-etcd still missing after the install" >&2; exit 1; }
echo "==> HA tools: etcd $(etcd --version 2>/dev/null | head -n1 | awk '{print $3}'), $(patroni --version 2>/dev/null), $(haproxy -v 2>/dev/null | head -n1 | awk '{print $1, $3}')"
