#!/usr/bin/env bash
# The README's commands as a new user runs them: in a fresh Debian 12 root (mmdebstrap, nothing
# added but git and ca-certificates), clone this checkout and run a command there.
#
#   bash scripts/fresh-root.sh build                 make (or reuse) the cached fresh root
#   bash scripts/fresh-root.sh run [CMD...]          clone the checkout's HEAD into a throwaway
#                                                    copy of the root and run CMD in the clone
#                                                    (default: bash scripts/demo.sh)
#
# The root is cached in $EXTCTL_LANES_CACHE/fresh-bookworm (default /var/cache/extctl-lanes), like
# the lanes (scripts/lanes.sh), and remade when its recipe changes. `run` never changes it: the
# root is an overlay whose upper layer is a scratch directory deleted after the run. The command
# runs chrooted with a clean environment: no NODE_EXTRA_CA_CERTS, no host Node on PATH, no
# node_modules; scripts/install-peers.sh must bring everything itself. What `run` clones is the
# checkout's last commit (uncommitted changes are not in it).
#
# One fact of these machines is copied in, as for the lanes: the CAs in /usr/local/share/ca-certificates
# through which this network reaches https (a Debian 12 elsewhere reaches it with its own CAs).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${EXTCTL_LANES_CACHE:-/var/cache/extctl-lanes}"
dir="$cache/fresh-bookworm"
include=git,ca-certificates

recipe() {
  printf 'suite=bookworm\nvariant=apt\ninclude=%s\n' "$include"
  printf 'aptopt=Acquire::Check-Valid-Until "false"\n'
  printf 'machine-cas=%s\n' "$(cat /usr/local/share/ca-certificates/* 2>/dev/null | sha256sum | cut -d' ' -f1)"
  printf 'finish=2\n'
}

is_fresh() {
  [ -f "$dir/.extctl-fresh-recipe" ] && [ -x "$dir/root/usr/bin/git" ] \
    && [ "$(cat "$dir/.extctl-fresh-recipe")" = "$(recipe)" ]
}

ensure_mmdebstrap() {
  command -v mmdebstrap >/dev/null 2>&1 && return 0
  echo "== installing mmdebstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; }
}

build() {
  if is_fresh; then
    echo "== fresh Debian 12 root: cached at $dir/root"
    return 0
  fi
  ensure_mmdebstrap
  mkdir -p "$cache"
  local tmp="$dir.new" log="$cache/fresh-bookworm.log" attempt
  echo "== fresh Debian 12 root: making $dir/root with mmdebstrap (log: $log)"
  for attempt in 1 2 3; do
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # No mirror argument: Debian's default one, the archive this machine reaches (a snapshot, so
    # Valid-Until is not checked; the option stays in the root's apt configuration).
    if mmdebstrap --variant=apt --mode=root \
      --aptopt='Acquire::Check-Valid-Until "false"' \
      --aptopt='Acquire::Retries "3"' \
      --include="$include" \
      bookworm "$tmp/root" >"$log" 2>&1; then
      break
    fi
    echo "   attempt $attempt failed (see $log); retrying" >&2
    sleep $((attempt * 5))
    attempt=fail
  done
  if [ "$attempt" = fail ]; then
    rm -rf "$tmp"
    echo "error: the fresh Debian 12 root cannot be made: mmdebstrap failed:" >&2
    grep -E '^(E|W):|error' "$log" | tail -n 8 >&2 || tail -n 8 "$log" >&2
    return 1
  fi
  local root="$tmp/root"
  # This network's CAs (see the header), so that curl and npm in the root reach https.
  if [ -d /usr/local/share/ca-certificates ]; then
    cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1
  fi
  # A chroot has no init: packages must not start services (docker-registry's would).
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  rm -f "$root/etc/resolv.conf"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  recipe >"$tmp/.extctl-fresh-recipe"
  rm -rf "$dir.old"
  [ ! -e "$dir" ] || mv "$dir" "$dir.old"
  mv "$tmp" "$dir"
  rm -rf "$dir.old"
  echo "== fresh Debian 12 root: $(du -sh "$dir/root" | cut -f1), $(chroot "$dir/root" git --version)"
}

run() {
  [ "$#" -gt 0 ] || set -- bash scripts/demo.sh
  if [ ! -x "$dir/root/usr/bin/git" ]; then
    echo "error: the fresh root is not built: run bash scripts/fresh-root.sh build" >&2
    return 1
  fi
  is_fresh || echo "warning: the fresh root was made from another recipe; bash scripts/fresh-root.sh build remakes it" >&2
  local common scratch rc=0
  common="$(cd "$here" && git rev-parse --path-format=absolute --git-common-dir)"
  echo "== fresh Debian 12 root: cloning $(cd "$here" && git log -1 --format='%h %s' | cut -c1-72)"
  # On disk, not tmpfs: the run installs a few hundred MiB of packages, Node and node_modules.
  scratch="$(mktemp -d "$cache/fresh-run.XXXXXX")"
  # shellcheck disable=SC2016
  unshare -m --propagation private -- env -i \
    FR_SCRATCH="$scratch" FR_ROOT="$dir/root" FR_CHECKOUT="$here" FR_GIT="$common" \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM="${TERM:-dumb}" \
    sh -euc '
      mount --make-rshared /
      s="$FR_SCRATCH"
      mkdir "$s/upper" "$s/work" "$s/root"
      mount -t overlay fresh-root -o "lowerdir=$FR_ROOT,upperdir=$s/upper,workdir=$s/work" "$s/root"
      r="$s/root"
      mount -t proc proc "$r/proc"
      mount --rbind /sys "$r/sys"
      mount --rbind /dev "$r/dev"
      mount -t tmpfs -o mode=0755 tmpfs "$r/run"
      mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
      # Lane roots made inside (scripts/lanes.sh) live on the disk, not in this overlay: the kernel
      # stacks overlayfs two deep at most, and a lane overlay plus systemd-sysext'"'"'s merge on top
      # of this one would be three ("Failed to merge hierarchies").
      mkdir "$s/lanes"
      mkdir -p "$r/var/cache/extctl-lanes"
      mount --bind "$s/lanes" "$r/var/cache/extctl-lanes"
      # The checkout and its git directory, read-only, only to clone from.
      for d in "$FR_CHECKOUT" "$FR_GIT"; do
        mkdir -p "$r$d"
        mount --rbind "$d" "$r$d"
        mount -o remount,bind,ro "$r$d"
      done
      exec chroot "$r" env -i HOME=/root LANG=C.UTF-8 TERM="$TERM" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        sh -euc "
          git config --global --add safe.directory \"\$0\"
          git -c advice.detachedHead=false clone -q \"\$0\" /root/extctl
          cd /root/extctl
          exec \"\$@\"
        " "$FR_CHECKOUT" "$@"
    ' fresh "$@" || rc=$?
  rm -rf "$scratch"
  return "$rc"
}

if [ "$(id -u)" != 0 ]; then
  echo "error: the fresh root needs root (mmdebstrap, mounts and chroot)" >&2
  exit 1
fi
cmd="${1:-}"
[ "$#" -gt 0 ] && shift
case "$cmd" in
  build) build ;;
  run) run "$@" ;;
  *)
    echo "usage: scripts/fresh-root.sh build | run [CMD...]" >&2
    exit 2
    ;;
esac
