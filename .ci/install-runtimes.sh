#!/usr/bin/env bash
# Installs, from Debian's packages, the runtimes that examples/verify's test
# runs the README's signature-verification snippets with (node, python3,
# ruby, php), and npm for `make docs-check` (the pinned @redocly/cli, which
# wants node 20.19 or later), only for the commands that are missing.
# Idempotent: with all five present it changes nothing and needs no network.
set -euo pipefail

log() { echo "==> $*"; }

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v ruby >/dev/null 2>&1 || missing+=(ruby)
command -v php >/dev/null 2>&1 || missing+=(php-cli)

if [ ${#missing[@]} -eq 0 ]; then
  log "runtimes present: node, npm, python3, ruby, php"
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
