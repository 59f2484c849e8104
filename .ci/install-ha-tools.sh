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
# shellcheck source=apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
apt_install_no_services etcd-server patroni python3-etcd haproxy
have_all || { echo "error: etcd, patroni, patronictl, haproxy or python3-etcd still missing after the install" >&2; exit 1; }
echo "==> HA tools: etcd $(etcd --version 2>/dev/null | head -n1 | awk '{print $3}'), $(patroni --version 2>/dev/null), $(haproxy -v 2>/dev/null | head -n1 | awk '{print $1, $3}')"
