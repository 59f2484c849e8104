#!/usr/bin/env bash
# Installs Debian's etcd-server, patroni (with its etcd client, python3-etcd)
# and haproxy for the failover drill (drill/failover_test.go,
# internal/hacluster) when they are missing. Idempotent: does nothing when
# etcd, patroni, patronictl and haproxy are all there. The packages' own
# services are not started (the drill runs its own, on 127.0.0.x ports).
# Waits for another apt/dpkg run to release its lock rather than failing.
set -euo pipefail
# shellcheck source=apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

have_all() {
  command -v etcd >/dev/null 2>&1 && command -v patroni >/dev/null 2>&1 &&
    command -v patronictl >/dev/null 2>&1 && command -v haproxy >/dev/null 2>&1 &&
    /usr/bin/python3 -c 'import etcd' >/dev/null 2>&1 # Debian's patroni runs under /usr/bin/python3
}

version() { echo "HA tools: etcd $(etcd --version 2>/dev/null | head -n1 | awk '{print $3}'), $(patroni --version 2>/dev/null), $(haproxy -v 2>/dev/null | head -n1 | awk '{print $1, $3}')"; }
ensure_installed "etcd, patroni, patronictl, haproxy or python3-etcd" have_all version etcd-server patroni python3-etcd haproxy
