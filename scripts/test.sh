#!/usr/bin/env bash
# Runs extctl's tests: `bash scripts/test.sh [unit|e2e|all]` (default all).
# Unit tests run anywhere. End-to-end tests need root and the peers (systemd-sysext,
# veritysetup, ...), which scripts/install-peers.sh installs; they run inside one private mount
# namespace so that every merge stays out of the host's mount table.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"

bash scripts/install-peers.sh
npm run --silent build

find_tests() { find "$1" -name '*.test.ts' -type f 2>/dev/null | sort; }

run_suite() {
  local dir="$1"
  mapfile -t files < <(find_tests "$dir")
  if [ "${#files[@]}" -eq 0 ]; then
    echo "error: no test files found under $dir" >&2
    exit 1
  fi
  echo "== ${#files[@]} test files under $dir"
  local conc="--test-concurrency=${TEST_CONCURRENCY:-2}"
  if [ "$dir" = test/e2e ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "error: end-to-end tests need root (they merge images with systemd-sysext)" >&2
      exit 1
    fi
    # A private mount namespace; /run is bind-mounted on itself so systemd-sysext can make it
    # a slave mount, which it insists on.
    unshare -m --propagation private sh -c 'mount --make-rshared / && mount --bind /run /run && exec "$@"' sh \
      node --import tsx --test "$conc" --test-timeout=600000 "${files[@]}"
  else
    node --import tsx --test "$conc" --test-timeout=120000 "${files[@]}"
  fi
}

case "$what" in
  unit) run_suite test/unit ;;
  e2e) run_suite test/e2e ;;
  all)
    run_suite test/unit
    run_suite test/e2e
    ;;
  *)
    echo "usage: scripts/test.sh [unit|e2e|all]" >&2
    exit 2
    ;;
esac
