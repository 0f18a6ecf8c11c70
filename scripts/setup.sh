#!/usr/bin/env bash
# Set up a fresh Debian machine (root; Node.js and npm present) and run the demo or the tests.
#   bash scripts/setup.sh demo   # install, build, run the demo on throwaway namespaces
#   bash scripts/setup.sh test   # install, build, run every test
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-}
case "$what" in demo | test) ;; *)
  echo "usage: bash scripts/setup.sh demo|test" >&2
  exit 2
  ;;
esac

if [ "$(id -u)" != 0 ]; then
  echo "run as root: the demo and the tests create network namespaces" >&2
  exit 2
fi

# System tools: a C compiler for libnetns.c, ip (iproute2) for namespaces, curl as the tenants' client, ss for socket checks, openssl for test certificates.
missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v ip >/dev/null || missing+=(iproute2)
command -v curl >/dev/null || missing+=(curl)
command -v ss >/dev/null || missing+=(iproute2)
command -v openssl >/dev/null || missing+=(openssl)
# The tests check nsproxy's behaviour against HAProxy's in the same namespace (test/haproxy-reference.test.ts).
if [ "$what" = test ] && [ ! -x /usr/sbin/haproxy ]; then missing+=(haproxy); fi
# ... and replace a tenant while wrk loads it (test/replace-under-load.test.ts).
if [ "$what" = test ] && ! command -v wrk >/dev/null; then missing+=(wrk); fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

npm ci --no-audit --no-fund
npx --no-install bun build.ts

if [ "$what" = demo ]; then
  exec npx --no-install bun scripts/demo.ts
fi
exec npx --no-install bun test --timeout 120000
