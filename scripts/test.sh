#!/usr/bin/env bash
# Runs extctl's tests: `bash scripts/test.sh [unit|e2e|faults|all]` (default all).
# Unit tests run anywhere. End-to-end tests need root and the peers (systemd-sysext,
# veritysetup, ...), which scripts/install-peers.sh installs; they run inside one private mount
# namespace so that every merge stays out of the host's mount table.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"

# Inside a lane (scripts/lanes.sh run sets EXTCTL_LANE) the host has already installed and built;
# the lane has no npm, and the checkout is the host's.
if [ -z "${EXTCTL_LANE:-}" ]; then
  if [ "$what" = unit ]; then
    # The unit tests need only the npm packages: no root, no Debian packages, no build; but a
    # machine without the toolchain's Node (24, see install-peers.sh) and npm gets them from
    # install-peers.sh.
    if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 24 || (a === 24 && b >= 11) ? 0 : 1)' 2>/dev/null \
      || ! command -v npm >/dev/null 2>&1; then
      bash scripts/install-peers.sh
    fi
    [ -d node_modules ] || npm ci --no-audit --no-fund
    # test/unit/cli/startup-lazy.test.ts runs the built CLI: a fresh clone has none yet.
    [ -f dist/cli/extctl.bundle.cjs ] || npm run --silent build
  else
    bash scripts/install-peers.sh
    npm run --silent build
    # dist/extctl, the one-file build, for test/e2e/single-executable.test.ts (here and in lanes),
    # and the arm64 one with its sysroot for test/e2e/arm64-qemu.test.ts (on the host only).
    bash scripts/arm64-sysroot.sh >/dev/null
    npm run --silent package >/dev/null
    npm run --silent package -- --arch arm64 >/dev/null
  fi
fi

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
  if [ "$dir" != test/unit ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "error: $dir needs root (its tests merge images with systemd-sysext and mount filesystems)" >&2
      exit 1
    fi
    # A private mount namespace; /run is bind-mounted on itself so systemd-sysext can make it
    # a slave mount, which it insists on.
    # A VM lane boot takes minutes under emulation (its own watchdog kills a stuck qemu sooner).
    local timeout=600000
    [ "$dir" != test/vm ] || timeout=5400000
    unshare -m --propagation private sh -c 'mount --make-rshared / && mount --bind /run /run && exec "$@"' sh \
      node --import tsx --test "$conc" --test-timeout="$timeout" "${files[@]}"
  else
    node --import tsx --test "$conc" --test-timeout=120000 "${files[@]}"
  fi
}

# The end-to-end suite on the host (Debian 12, systemd 252, tests pass --root) and in each lane
# (scripts/lanes.sh: Debian root filesystems with systemd 252, 257 and 262, run as `/` with their
# own Node). EXTCTL_LANES=host,252,257 (say) runs some of them; the default is those four.
# EXTCTL_LANES=vm (or host,...,vm) adds QEMU guests with their own kernel (test/vm, scripts/vm.sh;
# EXTCTL_VM_LANES=257 picks fewer systemd versions there), run from the host. It is not in the
# default yet: it has not completed a run on these machines (see docs/testing.md, "The VM lane").
# The host lane also boots the 257 and 262 roots as Kairos-like nodes (test/e2e/booted-node.test.ts;
# EXTCTL_NODE_LANES=257 picks fewer), so those roots are built whenever the host lane runs.
run_e2e() {
  if [ -n "${EXTCTL_LANE:-}" ]; then
    run_suite test/e2e
    return
  fi
  local lanes lane failed=()
  IFS=, read -r -a lanes <<<"${EXTCTL_LANES:-host,252,257,262}"
  local wanted=() vm_build=""
  for lane in "${lanes[@]}"; do [ "$lane" = host ] || [ "$lane" = vm ] || wanted+=("$lane"); done
  # The host lane's test/e2e/booted-node.test.ts boots these lane roots with systemd-nspawn.
  if [[ " ${lanes[*]} " == *" host "* ]]; then
    local node_lanes
    IFS=, read -r -a node_lanes <<<"${EXTCTL_NODE_LANES:-257,262}"
    for lane in "${node_lanes[@]}"; do
      [[ " ${wanted[*]} " == *" $lane "* ]] || wanted+=("$lane")
    done
  fi
  # The VM lane's guest roots are made (or found cached) beside the lane roots.
  if [[ " ${lanes[*]} " == *" vm "* ]]; then
    local vm_lanes
    IFS=, read -r -a vm_lanes <<<"${EXTCTL_VM_LANES:-257,262}"
    bash scripts/vm.sh build "${vm_lanes[@]}" &
    vm_build=$!
  fi
  local built=0
  [ "${#wanted[@]}" -eq 0 ] || bash scripts/lanes.sh build "${wanted[@]}" || built=$?
  [ -z "$vm_build" ] || wait "$vm_build" || built=$?
  [ "$built" = 0 ] || return "$built"
  # The lanes run side by side (their tests mostly wait on peers, loop devices and sockets, so
  # wall time is the slowest lane's, not the sum); EXTCTL_LANES_SERIAL=1 runs one after another.
  # Each lane's output goes to a log, printed whole when it ends.
  local logs pids=() start=$SECONDS
  logs="$(mktemp -d /tmp/extctl-e2e-lanes.XXXXXX)"
  for lane in "${lanes[@]}"; do
    (
      t0=$SECONDS
      rc=0
      if [ "$lane" = host ]; then
        run_suite test/e2e || rc=$?
      elif [ "$lane" = vm ]; then
        TEST_CONCURRENCY=1 run_suite test/vm || rc=$?
      else
        bash scripts/lanes.sh run "$lane" bash scripts/test.sh e2e || rc=$?
      fi
      echo "== e2e lane $lane: exit $rc after $((SECONDS - t0)) s"
      echo "$rc" >"$logs/$lane.rc"
    ) >"$logs/$lane.log" 2>&1 &
    pids+=("$!")
    [ -z "${EXTCTL_LANES_SERIAL:-}" ] || wait "$!"
  done
  wait "${pids[@]}" 2>/dev/null || true
  for lane in "${lanes[@]}"; do
    echo "== e2e lane $lane"
    cat "$logs/$lane.log"
    [ "$(cat "$logs/$lane.rc" 2>/dev/null)" = 0 ] || failed+=("$lane")
  done
  rm -rf "$logs"
  echo "== e2e lanes ${lanes[*]}: $((SECONDS - start)) s"
  if [ "${#failed[@]}" -gt 0 ]; then
    echo "error: the end-to-end suite failed in lane(s): ${failed[*]}" >&2
    return 1
  fi
}

case "$what" in
  unit) run_suite test/unit ;;
  e2e) run_e2e ;;
  faults) run_suite test/faults ;;
  all)
    run_suite test/unit
    run_e2e
    # The bounded share of the fault suite (FAULT_TRIALS, 10 by default; scripts/faults.sh runs 100).
    run_suite test/faults
    ;;
  *)
    echo "usage: scripts/test.sh [unit|e2e|faults|all]" >&2
    exit 2
    ;;
esac
