#!/usr/bin/env bash
# Installs Debian's tinyproxy for the egress proxy tests
# (internal/outbound/egress_test.go, internal/testproxy) when it is missing.
# Idempotent: does nothing when tinyproxy is on PATH or in /usr/bin. The
# package's own service is not started: the tests run their own instance,
# with a generated configuration, on a free 127.0.0.1 port.
set -euo pipefail
# shellcheck source=apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

have() { command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ]; }
version() { "$(command -v tinyproxy || echo /usr/bin/tinyproxy)" -v 2>/dev/null | head -n1; }
ensure_installed tinyproxy have version tinyproxy
