#!/usr/bin/env bash
# Set up a fresh Debian machine (Node.js and npm present) and run the demo or the tests, as root or via sudo.
#   bash scripts/setup.sh demo   # install, build, run the demo on throwaway namespaces
#   bash scripts/setup.sh test   # install, build (the release too), run every test; then the end-to-end tests again
#                                # with the daemon under Deno (npm run test:deno), whatever the first run gave;
#                                # one summary line per leg, then the total
set -euo pipefail
script=$(readlink -f "$0")
cd "$(dirname "$script")/.."

what=${1:-}
case "$what" in demo | test) ;; *)
  echo "usage: bash scripts/setup.sh demo|test" >&2
  exit 2
  ;;
esac

# Root is needed (namespaces, apt-get): a root shell runs on, a user with sudo gets re-run under it (with this
# PATH, where node and npm were found).
if [ "$(id -u)" != 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "run as root: the demo and the tests create network namespaces (no sudo here: su -c 'bash $script $what')" >&2
    exit 2
  fi
  exec sudo env "PATH=$PATH" bash "$script" "$what"
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
# Containers as tenants (test/docker-provider.test.ts; the CNI plugin after the reference loopback plugin in
# test/cni.test.ts): a dockerd and Podman's Docker-compatible service started by
# the test, an image imported from a busybox-static rootfs, nsenter (util-linux) into their namespaces.
if [ "$what" = test ]; then
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
fi
# The release (test/release.test.ts builds it): the arm64 libnetns.so and Debian's arm64 glibc to run it on,
# readelf to read what each binary needs, qemu-user to run the arm64 one here.
if [ "$what" = test ]; then
  command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
  command -v readelf >/dev/null || missing+=(binutils)
  command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

npm ci --no-audit --no-fund
npx --no-install bun build.ts

if [ "$what" = demo ]; then
  exec npx --no-install bun scripts/demo.ts
fi
# Each leg ends with its own line from bun's summary (" N pass", " N fail", " N skip", the last ones it prints),
# and the two end with the total: the closing line "N passed, N failed, N skipped" that CI reads.
rc=0
total_pass=0
total_fail=0
total_skip=0
leg() {
  local name=$1 log code pass fail skip
  shift
  log=$(mktemp)
  set +e
  "$@" 2>&1 | tee "$log"
  code=${PIPESTATUS[0]}
  set -e
  count() { grep -Eo "^ *[0-9]+ $1\$" "$log" | tail -n 1 | grep -Eo "[0-9]+" || true; }
  pass=$(count pass)
  fail=$(count fail)
  skip=$(count skip)
  rm -f "$log"
  if [ -z "$pass$fail" ]; then
    echo "$name leg: no test summary (exit code $code)"
    rc=1
    return
  fi
  echo "$name leg: ${pass:-0} passed, ${fail:-0} failed, ${skip:-0} skipped"
  total_pass=$((total_pass + ${pass:-0}))
  total_fail=$((total_fail + ${fail:-0}))
  total_skip=$((total_skip + ${skip:-0}))
  if [ "$code" -ne 0 ]; then rc=$code; fi
}
leg bun npx --no-install bun test --timeout 120000
# The same end-to-end tests with the daemon and the CLI run from source by Deno (the deno devDependency); the
# runner stays bun test. About 2 minutes more.
leg deno env NSPROXY_TEST_RUNTIME=deno npx --no-install bun test --timeout 120000 test/
echo "${total_pass} passed, ${total_fail} failed, ${total_skip} skipped"
if [ "$rc" -eq 0 ] && [ "$total_pass" -eq 0 ]; then
  echo "no test ran" >&2
  rc=1
fi
exit "$rc"
