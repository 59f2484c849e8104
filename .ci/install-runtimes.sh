#!/usr/bin/env bash
# Installs, from Debian's packages, the runtimes that examples/verify's test
# runs the README's signature-verification snippets with (node, python3,
# ruby, php), and npm for `make docs-check` (the pinned @redocly/cli, which
# wants node 20.19 or later), only for the commands that are missing.
# Then `npm ci` of examples/verify/node-standard (the pinned standardwebhooks).
# Idempotent: with all five present and that installed it changes nothing and
# needs no network.
set -euo pipefail

log() { echo "==> $*"; }

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v ruby >/dev/null 2>&1 || missing+=(ruby)
command -v php >/dev/null 2>&1 || missing+=(php-cli)

# The pinned standardwebhooks npm package that examples/verify's Standard
# Webhooks snippet for Node runs with (package-lock.json), once npm is there.
install_node_standard() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/examples/verify/node-standard"
  if [ -d "$dir/node_modules/standardwebhooks" ]; then
    log "standardwebhooks present in examples/verify/node-standard"
    return
  fi
  log "installing standardwebhooks (package-lock.json) in examples/verify/node-standard"
  (cd "$dir" && npm ci --no-audit --no-fund)
}

if [ ${#missing[@]} -eq 0 ]; then
  log "runtimes present: node, npm, python3, ruby, php"
  install_node_standard
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "error: need root (or sudo) to install ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi

log "installing ${missing[*]} for the verification snippets and make docs-check"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_node_standard
