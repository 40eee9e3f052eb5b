#!/usr/bin/env bash
# Benchmark the report of many problems: `tier validate` of a project whose every service has
# a wrong value, at 2,500, 10,000 and 30,000 problems (100,000 with PROBLEMS_MAX=100000).
#
#   bash bench/errors.sh                   # from the repository root
#
# Each problem is rendered with its source snippet; the time should grow linearly with the
# count. hyperfine times each size; the table goes to stdout.
set -euo pipefail

RUNS="${RUNS:-3}"
SIZES="${SIZES:-2500 10000 30000}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '==> %s\n' "$*" >&2; }
command -v hyperfine >/dev/null || apt-get install -y hyperfine >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y hyperfine >/dev/null; }

if [ "${BENCH_SKIP_BUILD:-0}" != "1" ]; then
  log "building tier (release)"
  (cd "$ROOT" && cargo build --release -p tier >&2)
fi
TIER="$ROOT/target/release/tier"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tier-bench-errors.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

commands=()
for size in $SIZES; do
  dir="$WORK/p$size"
  mkdir -p "$dir"
  python3 - "$size" > "$dir/tier.toml" <<'PY'
import sys
count = int(sys.argv[1])
print('[project]\nname = "many"\n\n[environments.dev]\nruntime = "local"\n')
for i in range(count):
    print(f'[services.s{i}]\ncommand = ["x"]\nreplicas = "three"\n')
PY
  commands+=("-n" "$size problems" "$TIER -C $dir validate 2>/dev/null || true")
done
log "timing tier validate"
hyperfine --warmup 1 --runs "$RUNS" --style basic --export-markdown "$WORK/table.md" "${commands[@]}" >&2
cat "$WORK/table.md"
