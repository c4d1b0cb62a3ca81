#!/usr/bin/env bash
# The extctl demo: builds a signed extension, serves it over HTTPS, installs, enables and merges
# it on a throwaway root with the real systemd-sysext, then removes it. Run as root on Debian 12:
#   bash scripts/demo.sh
# Everything happens in a temp dir and a private mount namespace; the host is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "error: the demo merges an image with systemd-sysext, which needs root; run it with sudo" >&2
  exit 1
fi
bash scripts/install-peers.sh
npm run --silent build
exec unshare -m --propagation private sh -c \
  'mount --make-rshared / && mount --bind /run /run && exec node --import tsx scripts/demo.ts'
