#!/usr/bin/env bash
# Makes sure this machine has what the test suite needs: redis-server, Debian's chromium, nginx,
# Python's redis and msgpack modules (for the README's examples), and the npm packages.
# On Debian or Ubuntu as root it installs what is missing with apt-get; anywhere else it stops and
# prints the command to run. `npm test` runs it first (pretest), and so does .ci/run.
#
# The locations can be overridden (the tests of this script do): CHROMIUM, PYTHON, NGINX_DIRS,
# OS_RELEASE; DRY_RUN=1 prints the apt-get command instead of running it.
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PYTHON=${PYTHON:-/usr/bin/python3}
NGINX_DIRS=${NGINX_DIRS:-/usr/sbin:/usr/bin:/usr/local/sbin}
OS_RELEASE=${OS_RELEASE:-/etc/os-release}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# The README's server API examples are curl commands, run as written.
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x "$CHROMIUM" ] || missing+=(chromium)
PATH="$NGINX_DIRS:$PATH" command -v nginx >/dev/null 2>&1 || missing+=(nginx)
"$PYTHON" -c 'import redis, msgpack' >/dev/null 2>&1 || missing+=(python3 python3-redis python3-msgpack)

if [ "${#missing[@]}" -gt 0 ]; then
  install="apt-get install -y --no-install-recommends ${missing[*]}"
  debian=false
  if [ -r "$OS_RELEASE" ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' "$OS_RELEASE"; then debian=true; fi
  if [ "$debian" = true ] && [ "$(id -u)" = 0 ]; then
    if [ "${DRY_RUN:-}" = 1 ]; then
      echo "test dependencies: would run: apt-get update && $install"
    else
      echo "test dependencies: installing ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $install -qq
    fi
  else
    echo "test dependencies missing: ${missing[*]}" >&2
    if [ "$debian" = true ]; then
      echo "install them with: sudo apt-get update && sudo $install" >&2
    else
      echo "install them with your package manager (on Debian or Ubuntu: sudo apt-get update && sudo $install)" >&2
    fi
    exit 1
  fi
else
  echo "test dependencies: all present"
fi

# A fresh clone has no node_modules yet: install the exact tree of the lock file.
if [ ! -x node_modules/.bin/turbo ] && [ "${DRY_RUN:-}" != 1 ]; then
  npm ci --no-audit --no-fund
fi
