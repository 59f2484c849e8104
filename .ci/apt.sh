# Sourced by the .ci/install-*.sh scripts: one way to install Debian
# packages for the tests.

# apt_install_no_services PKG...: apt-get update, then install PKG...
# without their recommends and without starting their services (a
# policy-rc.d that refuses, removed afterwards): the tests run their own
# instances on 127.0.0.x ports. Waits up to five minutes for another
# apt/dpkg run to release its lock rather than failing.
apt_install_no_services() {
  export DEBIAN_FRONTEND=noninteractive
  local apt_opts=(-o DPkg::Lock::Timeout=300)
  local policy=/usr/sbin/policy-rc.d added=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    added=1
  fi
  local rc=0
  { apt-get "${apt_opts[@]}" update && apt-get "${apt_opts[@]}" install -y --no-install-recommends "$@"; } || rc=$?
  if [ -n "$added" ]; then rm -f "$policy"; fi
  return "$rc"
}

# ensure_installed WHAT HAVE VERSION PKG...: when the command HAVE fails,
# install PKG... with apt_install_no_services and fail unless HAVE then
# succeeds; either way print "==> " and VERSION's output. WHAT names the
# tools in messages.
ensure_installed() {
  local what=$1 have=$2 version=$3
  shift 3
  if ! "$have"; then
    echo "==> $what missing: apt-get install -y $*"
    apt_install_no_services "$@"
    "$have" || { echo "error: $what still missing after the install" >&2; return 1; }
  fi
  echo "==> $("$version")"
}

# go_install_pinned NAME MODULE PKG VERSION: go install PKG@VERSION into
# $(go env GOPATH)/bin unless the binary NAME there was built from MODULE at
# VERSION; outside webhookd's module, so the tool's dependencies stay out of
# go.mod. Prints "==> " and where the tool is.
go_install_pinned() {
  local name=$1 module=$2 pkg=$3 version=$4
  local gobin bin
  gobin="$(go env GOPATH)/bin"
  bin="$gobin/$name"
  if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -q "mod[[:space:]]*$module[[:space:]]*$version"; then
    echo "==> $name $version: $bin"
  else
    echo "==> $name $version is missing: go install $pkg@$version (into $gobin)"
    (cd / && GOBIN="$gobin" GOFLAGS=-mod=mod go install "$pkg@$version")
  fi
}
