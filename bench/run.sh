#!/usr/bin/env bash
# Runs every benchmark in bench/ (each bench/*.ts except lib.ts) and writes bench/RESULTS.md and
# bench/ratios.svg from the BENCH lines they print (the convention is in bench/lib.ts); a full run
# (no NAME) also writes the results table in docs/benchmarks.md.
# Usage: bash bench/run.sh [NAME...]   e.g. `bash bench/run.sh startup https`; BENCH_RUNS=N for runs.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -z "${EXTCTL_BIN:-}" ]; then
  npm run --silent build >/dev/null 2>&1 || echo "warning: npm run build reported errors; using what it emitted" >&2
fi

out_dir=bench/results
mkdir -p "$out_dir"
results="$out_dir/results.jsonl"
failures="$out_dir/failures.txt"
: >"$results"
: >"$failures"

if [ "$#" -gt 0 ]; then
  files=()
  for name in "$@"; do files+=("bench/${name%.ts}.ts"); done
else
  mapfile -t files < <(find bench -maxdepth 1 -name '*.ts' ! -name 'lib.ts' -type f | sort)
fi

for file in "${files[@]}"; do
  echo "== $file" >&2
  log="$out_dir/$(basename "$file" .ts).log"
  start=$(date +%s)
  # Each benchmark prints BENCH lines on stdout; its other output goes to the log. boot.ts runs
  # in the systemd 257 lane when that lane is built: its peer, `systemd-dissect --validate` (what
  # immucore runs), is 253+, and the host's 252 lacks it.
  run=(node --import tsx "$file")
  if [ "$(basename "$file")" = boot.ts ] && [ -x "$(bash scripts/lanes.sh path 257)/usr/bin/node" ]; then
    run=(bash scripts/lanes.sh run 257 sh -c "cd '$PWD' && node --import tsx '$file'")
  fi
  if "${run[@]}" >"$log.out" 2>"$log"; then
    status=ok
  else
    status="exit $?"
    echo "$file: $status (see $log)" >>"$failures"
  fi
  if ! grep '^BENCH ' "$log.out" | tee -a "$results" >&2; then
    echo "$file: printed no BENCH line (see bench/lib.ts for the convention; its output is in $log)" >>"$failures"
  fi
  grep -v '^BENCH ' "$log.out" >>"$log" || true
  rm -f "$log.out"
  echo "   $status in $(($(date +%s) - start)) s" >&2
done

# A full run also writes docs/benchmarks.md's results table (a partial one would shrink it).
if [ "$#" -eq 0 ]; then
  node --import tsx bench/lib.ts report "$results" bench "$failures" docs/benchmarks.md
  npx prettier --log-level warn --write docs/benchmarks.md
else
  node --import tsx bench/lib.ts report "$results" bench "$failures"
fi
