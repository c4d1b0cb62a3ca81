#!/usr/bin/env bash
# Lanes: Debian root filesystems with a newer (or the same) systemd, in which the end-to-end
# suite runs with the lane root as `/` (systemd not PID 1, as in an installer or a container).
#
#   bash scripts/lanes.sh build [LANE...]     make (or reuse) the cached roots; default all
#   bash scripts/lanes.sh path LANE           print a lane's cached root
#   bash scripts/lanes.sh run LANE CMD...     run CMD inside the lane (checkout bound at the same path)
#
# LANE is 252 (bookworm), 257 (trixie) or 262 (forky); the suite name works too. Roots are cached
# in $EXTCTL_LANES_CACHE (default /var/cache/extctl-lanes/SUITE), outside the checkout, and remade
# when their package list changes. `run` never changes the cache: the root is an overlay whose
# upper layer lives in a tmpfs that disappears with the run.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${EXTCTL_LANES_CACHE:-/var/cache/extctl-lanes}"

# The peers the suite uses (scripts/install-peers.sh has the host's list).
common=(
  systemd systemd-container cryptsetup-bin openssl squashfs-tools erofs-utils gdisk fdisk
  util-linux attr zstd xz-utils lz4 curl ca-certificates skopeo umoci apache2-utils efitools
  docker-registry python3 mount time tinyproxy
)

suite_of() {
  case "$1" in
    252 | bookworm) echo bookworm ;;
    257 | trixie) echo trixie ;;
    262 | forky) echo forky ;;
    *)
      echo "error: unknown lane '$1' (lanes: 252 bookworm, 257 trixie, 262 forky)" >&2
      return 2
      ;;
  esac
}

version_of() {
  case "$1" in
    bookworm) echo 252 ;;
    trixie) echo 257 ;;
    forky) echo 262 ;;
  esac
}

# Debian 12 has systemd-repart inside `systemd` and a nodejs (18) too old for extctl: the host's
# Node 20 is copied in instead. 13 and testing split systemd-repart out and ship Node 20 / 24.
packages_of() {
  local suite="$1"
  local list=("${common[@]}")
  case "$suite" in
    bookworm) ;;
    *) list+=(systemd-repart nodejs) ;;
  esac
  local IFS=,
  echo "${list[*]}"
}

lane_dir() { echo "$cache/$1"; }

# What a root was made from: the package list, the mmdebstrap options and (bookworm) the host node.
recipe_of() {
  local suite="$1"
  printf 'suite=%s\npackages=%s\nvariant=apt\n' "$suite" "$(packages_of "$suite")"
  if [ "$suite" = bookworm ]; then
    printf 'host-node=%s\n' "$(sha256sum "$(host_node)" | cut -d' ' -f1)"
  fi
}

host_node() { readlink -f "$(command -v node)"; }

is_fresh() {
  local suite="$1" dir
  dir="$(lane_dir "$suite")"
  [ -f "$dir/.extctl-lane-recipe" ] && [ -x "$dir/root/usr/bin/node" ] \
    && [ "$(cat "$dir/.extctl-lane-recipe")" = "$(recipe_of "$suite")" ]
}

ensure_mmdebstrap() {
  command -v mmdebstrap >/dev/null 2>&1 && return 0
  echo "== installing mmdebstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; }
}

build_one() {
  local suite="$1" dir tmp log attempt
  dir="$(lane_dir "$suite")"
  if is_fresh "$suite"; then
    echo "== lane $suite (systemd $(version_of "$suite")): cached at $dir/root"
    return 0
  fi
  mkdir -p "$cache"
  tmp="$dir.new"
  log="$cache/$suite.log"
  echo "== lane $suite (systemd $(version_of "$suite")): making $dir/root with mmdebstrap (log: $log)"
  for attempt in 1 2 3; do
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # No mirror argument: mmdebstrap uses Debian's default one, the archive this machine reaches.
    # The archive here is a snapshot whose testing Release files are past Valid-Until.
    if mmdebstrap --variant=apt --mode=root \
      --aptopt='Acquire::Check-Valid-Until "false"' \
      --aptopt='Acquire::Retries "3"' \
      --include="$(packages_of "$suite")" \
      "$suite" "$tmp/root" >"$log" 2>&1; then
      break
    fi
    # Only an archive hiccup is worth another try; a missing package is not.
    if grep -qE 'Unable to locate package|has no installation candidate|unmet dependencies' "$log"; then
      attempt=fail
      break
    fi
    echo "   attempt $attempt failed (see $log); retrying" >&2
    sleep $((attempt * 5))
    attempt=fail
  done
  if [ "$attempt" = fail ]; then
    rm -rf "$tmp"
    echo "error: lane $suite (systemd $(version_of "$suite")) cannot be made: mmdebstrap failed:" >&2
    grep -E '^(E|W):|error' "$log" | tail -n 8 >&2 || tail -n 8 "$log" >&2
    return 1
  fi
  finish_root "$suite" "$tmp/root"
  recipe_of "$suite" >"$tmp/.extctl-lane-recipe"
  # Runs may still have the previous root as their overlay's lower layer: move it aside and
  # delete it at the next rebuild instead of pulling it out from under them.
  rm -rf "$dir.old"
  [ ! -e "$dir" ] || mv "$dir" "$dir.old"
  mv "$tmp" "$dir"
  echo "== lane $suite: $(chroot "$dir/root" systemd-sysext --version | head -n1), node $(chroot "$dir/root" node --version)"
}

# Things mmdebstrap does not do for us.
finish_root() {
  local suite="$1" root="$2"
  if [ "$suite" = bookworm ]; then
    install -m 0755 "$(host_node)" "$root/usr/bin/node"
  fi
  # docker-registry's package would start a service; there is no init here, nothing to stop.
  # Test CAs and the machine's own CAs (npm and curl in the lane reach what the host reaches).
  if [ -d /usr/local/share/ca-certificates ]; then
    cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
    chroot "$root" update-ca-certificates >/dev/null 2>&1 || true
  fi
  # A mount point for the checkout (bound at the same path, so absolute paths agree).
  mkdir -p "$root$here"
  rm -f "$root/etc/resolv.conf"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}

# Runs CMD in the lane: a private mount namespace whose mounts are shared (so systemd-sysext's
# merge, done in a namespace of its own, propagates back), an overlay of the cached root, proc,
# /sys, /dev, tmpfs /run and /tmp, the checkout bound in, then chroot with a clean environment.
run_lane() {
  local suite="$1"
  shift
  local dir
  dir="$(lane_dir "$suite")"
  if [ ! -x "$dir/root/usr/bin/node" ]; then
    echo "error: lane $suite is not built: run bash scripts/lanes.sh build $suite" >&2
    return 1
  fi
  # A stale root still runs (another checkout may be rebuilding it); say so.
  is_fresh "$suite" || echo "warning: lane $suite was made from another package list; bash scripts/lanes.sh build $suite remakes it" >&2
  [ "$#" -gt 0 ] || set -- bash
  local version
  version="$(version_of "$suite")"
  local scratch rc=0
  scratch="$(mktemp -d /tmp/extctl-lane.XXXXXX)"
  # shellcheck disable=SC2016
  unshare -m --propagation private -- env -i \
    LANE_SCRATCH="$scratch" LANE_DIR="$dir" LANE_CHECKOUT="$here" LANE_VERSION="$version" LANE_CI="${CI:-}" \
    LANE_TEST_CONCURRENCY="${TEST_CONCURRENCY:-}" LANE_FAULT_TRIALS="${FAULT_TRIALS:-}" \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    sh -euc '
      mount --make-rshared /
      scratch="$LANE_SCRATCH"
      mount -t tmpfs -o mode=0755 lane-scratch "$scratch"
      mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
      mount -t overlay lane-root -o "lowerdir=$LANE_DIR/root,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/root"
      r="$scratch/root"
      mount -t proc proc "$r/proc"
      mount --rbind /sys "$r/sys"
      mount --rbind /dev "$r/dev"
      mount -t tmpfs -o mode=0755 tmpfs "$r/run"
      mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
      mkdir -p "$r$LANE_CHECKOUT"
      mount --rbind "$LANE_CHECKOUT" "$r$LANE_CHECKOUT"
      # node_modules may be a symlink to a shared install outside the checkout: bind it too.
      nm=$(readlink -f "$LANE_CHECKOUT/node_modules" 2>/dev/null || true)
      case "$nm" in
        "" | "$LANE_CHECKOUT"/*) ;;
        *) mkdir -p "$r$nm" && mount --rbind "$nm" "$r$nm" ;;
      esac
      cd "$r$LANE_CHECKOUT"
      set -- env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        EXTCTL_LANE="$LANE_VERSION" ${LANE_CI:+CI=$LANE_CI} \
        ${LANE_TEST_CONCURRENCY:+TEST_CONCURRENCY=$LANE_TEST_CONCURRENCY} \
        ${LANE_FAULT_TRIALS:+FAULT_TRIALS=$LANE_FAULT_TRIALS} \
        "$@"
      exec chroot "$r" sh -c "cd \"\$0\" && exec \"\$@\"" "$LANE_CHECKOUT" "$@"
    ' lane "$@" || rc=$?
  rmdir "$scratch" 2>/dev/null || true
  return "$rc"
}

if [ "$(id -u)" != 0 ]; then
  echo "error: lanes need root (mmdebstrap, mounts and chroot)" >&2
  exit 1
fi

cmd="${1:-build}"
[ "$#" -gt 0 ] && shift
case "$cmd" in
  build)
    [ "$#" -gt 0 ] || set -- bookworm trixie forky
    ensure_mmdebstrap
    # In parallel: mostly downloads and dpkg, about 4-5 minutes for all three at once.
    pids=()
    for lane in "$@"; do
      suite="$(suite_of "$lane")"
      build_one "$suite" &
      pids+=("$!")
    done
    failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    exit "$failed"
    ;;
  path)
    suite="$(suite_of "${1:?usage: lanes.sh path LANE}")"
    echo "$(lane_dir "$suite")/root"
    ;;
  run)
    suite="$(suite_of "${1:?usage: lanes.sh run LANE CMD...}")"
    shift
    run_lane "$suite" "$@"
    ;;
  *)
    echo "usage: scripts/lanes.sh build [LANE...] | path LANE | run LANE CMD..." >&2
    exit 2
    ;;
esac
