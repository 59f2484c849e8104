#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard's browser test
# (internal/dashboard/browser_test.go) when it is missing. Idempotent: does nothing
# when /usr/bin/chromium is already there. Waits for another apt/dpkg run
# to release its lock rather than failing.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "==> chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
  exit 0
fi

echo "==> chromium is missing: apt-get update && apt-get install -y chromium"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=300)
apt-get "${apt_opts[@]}" update
apt-get "${apt_opts[@]}" install -y chromium
/usr/bin/chromium --version
