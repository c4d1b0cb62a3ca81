#!/usr/bin/env bash
# Checks that `npm run release` is reproducible: makes the release twice from this checkout and
# compares every file byte for byte. Exits 0 when all are equal, 1 naming the files that differ.
# Usage: bash scripts/release-repro.sh [RELEASE OPTIONS...]
#   e.g. `bash scripts/release-repro.sh --no-code-cache` (byte-equal), or without options to see
#   what V8's code cache changes (the two binaries, then SHA256SUMS and the SBOM that name them).
set -euo pipefail
cd "$(dirname "$0")/.."
first=$(mktemp -d)
trap 'rm -rf "$first"' EXIT

npm run --silent release -- "$@" >/dev/null
cp -a dist/release/. "$first/"
npm run --silent release -- "$@" >/dev/null

status=0
# Every file of either run (man/*.8 are in a directory), by its path under dist/release.
while IFS= read -r name; do
  if [ ! -f "$first/$name" ] || [ ! -f "dist/release/$name" ]; then
    echo "only in one run: $name"
    status=1
  elif cmp -s "$first/$name" "dist/release/$name"; then
    echo "equal:   $name"
  else
    echo "differs: $name"
    status=1
  fi
done < <({
  (cd "$first" && find . -type f)
  (cd dist/release && find . -type f)
} | sed 's|^\./||' | sort -u)
exit "$status"
