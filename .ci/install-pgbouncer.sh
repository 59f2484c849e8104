#!/usr/bin/env bash
# Installs Debian's pgbouncer for the pooler test (internal/server/pgbouncer_test.go,
# internal/pgbouncer) and `webhookd bench -pgbouncer` when it is missing.
# Idempotent: does nothing when pgbouncer is on PATH or in /usr/sbin. The
# package's own service is not started: the test and the bench run their
# own instance, with a generated ini, on a free 127.0.0.1 port.
# Waits for another apt/dpkg run to release its lock rather than failing.
set -euo pipefail
# shellcheck source=apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

have() { command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; }
version() { "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" --version 2>/dev/null | head -n1; }
ensure_installed pgbouncer have version pgbouncer
