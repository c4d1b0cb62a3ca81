#!/usr/bin/env bash
# The arm64 libraries the arm64 one-file build links (libc, libstdc++, libgcc), for running it on
# this x86-64 machine under qemu-user: `qemu-aarch64-static -L DIR/root dist/extctl-linux-arm64`.
# Made by mmdebstrap's extract variant, which unpacks the packages without running any arm64 code
# (no binfmt needed), and cached like the lanes (scripts/lanes.sh) in
# $EXTCTL_LANES_CACHE/arm64-sysroot (default /var/cache/extctl-lanes); remade when its recipe changes.
# Prints the sysroot's path.
set -euo pipefail
cache="${EXTCTL_LANES_CACHE:-/var/cache/extctl-lanes}"
dir="$cache/arm64-sysroot"
include=libc6,libstdc++6,libgcc-s1
recipe="suite=bookworm arch=arm64 variant=extract include=$include"

if [ -f "$dir/.extctl-sysroot-recipe" ] && [ "$(cat "$dir/.extctl-sysroot-recipe")" = "$recipe" ] \
  && [ -e "$dir/root/lib/ld-linux-aarch64.so.1" ]; then
  echo "$dir/root"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "error: making the arm64 sysroot in $dir needs root (mmdebstrap)" >&2
  exit 1
fi
mkdir -p "$cache"
tmp="$dir.new"
rm -rf "$tmp"
mkdir -p "$tmp"
log="$cache/arm64-sysroot.log"
for attempt in 1 2 3; do
  if mmdebstrap --arch=arm64 --variant=extract --include="$include" \
    --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Retries "3"' \
    bookworm "$tmp/root" >"$log" 2>&1; then
    break
  fi
  [ "$attempt" = 3 ] && {
    echo "error: mmdebstrap could not make the arm64 sysroot (see $log)" >&2
    exit 1
  }
  rm -rf "$tmp/root"
  sleep $((attempt * 5))
done
printf '%s' "$recipe" >"$tmp/.extctl-sysroot-recipe"
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$dir/root"
