#!/usr/bin/env bash
# Installs Debian's iproute2 and iptables for the network-namespace tests
# (internal/netns, the partition drills) when either is missing.
# Idempotent: does nothing when ip and iptables are on PATH or in /usr/sbin.
set -euo pipefail
# shellcheck source=apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

have() {
  { command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ]; } &&
    { command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ]; }
}
version() { "$(command -v iptables || echo /usr/sbin/iptables)" --version 2>/dev/null | head -n1; }
ensure_installed "ip or iptables" have version iproute2 iptables
