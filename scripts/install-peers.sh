#!/usr/bin/env bash
# Installs the real programs extctl is tested and demonstrated against (Debian 12 packages),
# and Node's dependencies. Idempotent: does nothing when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  systemd systemd-container cryptsetup-bin openssl squashfs-tools erofs-utils gdisk fdisk
  docker-registry skopeo umoci zstd xz-utils lz4 curl apache2-utils efitools util-linux
  ca-certificates mmdebstrap time attr python3 binutils zsh fish tinyproxy
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "error: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "== installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# docker-registry's and tinyproxy's packages start system services; tests start their own.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now docker-registry tinyproxy >/dev/null 2>&1 || true
fi

# A node_modules symlink is a shared install that another checkout owns (git worktrees): never
# reinstall through it, `npm ci` would empty the shared directory for everyone.
if [ -L node_modules ]; then
  :
elif [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
