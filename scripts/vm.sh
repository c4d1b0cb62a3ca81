#!/usr/bin/env bash
# The VM lane's guests: Debian roots with their own kernel (device-mapper, dm-verity, EFI
# variables), booted by QEMU, in which test/vm runs extctl's one file against real dm-verity and
# UEFI Secure Boot.
#
#   bash scripts/vm.sh build [LANE...]     make (or reuse) the cached guest roots; default 257 262
#   bash scripts/vm.sh path LANE           print a guest root
#
# LANE is 257 (trixie) or 262 (forky). Roots are cached in $EXTCTL_VM_CACHE (default
# /var/cache/extctl-vm/SUITE), outside the checkout, and remade when their recipe changes. The
# tests never change a cached root: every run copies it.
set -euo pipefail
cache="${EXTCTL_VM_CACHE:-/var/cache/extctl-vm}"

# What a guest needs: a kernel and an initramfs that finds the root by label, systemd with
# systemd-sysext and -repart, the verity tools, and for Secure Boot ukify and the systemd-boot stub.
packages=(
  systemd systemd-sysv systemd-repart udev dbus kmod linux-image-amd64 initramfs-tools
  cryptsetup-bin dmsetup squashfs-tools erofs-utils openssl systemd-ukify systemd-boot-efi
  keyutils fdisk e2fsprogs util-linux tar
)

suite_of() {
  case "$1" in
    257 | trixie) echo trixie ;;
    262 | forky) echo forky ;;
    *)
      echo "error: unknown VM lane '$1' (VM lanes: 257 trixie, 262 forky)" >&2
      return 2
      ;;
  esac
}

version_of() {
  case "$1" in
    trixie) echo 257 ;;
    forky) echo 262 ;;
  esac
}

recipe_of() {
  local IFS=,
  printf 'suite=%s\npackages=%s\nvariant=apt\nfinish=2\n' "$1" "${packages[*]}"
}

guest_dir() { echo "$cache/$1"; }

is_fresh() {
  local dir
  dir="$(guest_dir "$1")"
  [ -f "$dir/.extctl-vm-recipe" ] && [ "$(cat "$dir/.extctl-vm-recipe")" = "$(recipe_of "$1")" ] \
    && compgen -G "$dir/root/boot/vmlinuz-*" >/dev/null
}

build_one() {
  local suite="$1" dir tmp log attempt t0=$SECONDS
  dir="$(guest_dir "$suite")"
  if is_fresh "$suite"; then
    echo "== VM guest $suite (systemd $(version_of "$suite")): cached at $dir/root"
    return 0
  fi
  mkdir -p "$cache"
  tmp="$dir.new"
  log="$cache/$suite.log"
  echo "== VM guest $suite (systemd $(version_of "$suite")): making $dir/root with mmdebstrap (log: $log)"
  local IFS=,
  for attempt in 1 2 3; do
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if mmdebstrap --variant=apt --mode=root \
      --aptopt='Acquire::Check-Valid-Until "false"' \
      --aptopt='Acquire::Retries "3"' \
      --include="${packages[*]}" \
      "$suite" "$tmp/root" >"$log" 2>&1; then
      break
    fi
    if grep -qE 'Unable to locate package|has no installation candidate|unmet dependencies' "$log"; then
      attempt=fail
      break
    fi
    echo "   attempt $attempt failed (see $log); retrying" >&2
    sleep $((attempt * 5))
    attempt=fail
  done
  unset IFS
  if [ "$attempt" = fail ]; then
    rm -rf "$tmp"
    echo "error: VM guest $suite cannot be made: mmdebstrap failed:" >&2
    grep -E '^(E|W):|error' "$log" | tail -n 8 >&2 || tail -n 8 "$log" >&2
    return 1
  fi
  finish_root "$tmp/root"
  recipe_of "$suite" >"$tmp/.extctl-vm-recipe"
  rm -rf "$dir.old"
  [ ! -e "$dir" ] || mv "$dir" "$dir.old"
  mv "$tmp" "$dir"
  rm -rf "$dir.old"
  echo "== VM guest $suite: $(chroot "$dir/root" systemd-sysext --version | head -n1), kernel $(basename "$(ls "$dir"/root/boot/vmlinuz-* | head -n1)") ($((SECONDS - t0)) s)"
}

# What mmdebstrap leaves undone for a guest that boots by itself.
finish_root() {
  local root="$1"
  # The root is found by its label; nothing else is mounted from a disk.
  printf 'LABEL=COS_ACTIVE / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
  printf 'extctl-vm\n' >"$root/etc/hostname"
  # A fresh machine id on every boot of every copy (systemd makes one when the file is empty).
  : >"$root/etc/machine-id"
  # No console login needed: the test unit powers the guest off. No network either.
  chroot "$root" systemctl mask serial-getty@ttyS0.service getty@tty1.service \
    systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_reap.service fstrim.timer >/dev/null 2>&1 || true
}

if [ "$(id -u)" != 0 ]; then
  echo "error: the VM lane needs root (mmdebstrap, chroot, mkfs.ext4 -d of a root-owned tree)" >&2
  exit 1
fi

cmd="${1:-build}"
[ "$#" -gt 0 ] && shift
case "$cmd" in
  build)
    [ "$#" -gt 0 ] || set -- 257 262
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
    suite="$(suite_of "${1:?usage: vm.sh path LANE}")"
    echo "$(guest_dir "$suite")/root"
    ;;
  *)
    echo "usage: scripts/vm.sh build [LANE...] | path LANE" >&2
    exit 2
    ;;
esac
