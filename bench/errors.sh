#!/usr/bin/env bash
# Benchmark the report of many problems: `tier validate` of a project whose every service has
# a wrong value, at 2,500, 10,000 and 30,000 problems (100,000 with PROBLEMS_MAX=100000).
#
#   bash bench/errors.sh                   # from the repository root
#
# Each problem is rendered with its source snippet; the time should grow linearly with the
# count. hyperfine times each size; the table goes to stdout.
#
# Settings (environment variables):
#   SIZES="2500 10000 30000" RUNS=3      problems per project, hyperfine runs of each
#   BENCH_SMOKE=1                        a smoke run: the same steps at tiny sizes (SIZES="20 100"
#                                        RUNS=2 unless set), seconds long
#   BENCH_BIN_DIR=target/debug           take tier from that directory as it is (builds nothing)
#                                        (a smoke run's default: target/debug)
#   BENCH_SKIP_BUILD=1                   use target/release/tier as it is
set -euo pipefail

if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${SIZES:=20 100}" "${RUNS:=2}"
fi
RUNS="${RUNS:-3}"
SIZES="${SIZES:-2500 10000 30000}"
if [ "${PROBLEMS_MAX:-}" = "100000" ]; then SIZES="$SIZES 100000"; fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A smoke run builds nothing: the debug binaries, unless BENCH_BIN_DIR names others.
if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${BENCH_BIN_DIR:=${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
fi
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
if ! command -v hyperfine >/dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  log "installing hyperfine"
  $sudo apt-get install -y hyperfine >/dev/null 2>&1 \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y hyperfine >/dev/null; } || true
  command -v hyperfine >/dev/null || die "hyperfine is missing: apt-get install -y hyperfine"
fi
command -v python3 >/dev/null || die "python3 is needed for the project generator"

if [ -n "${BENCH_BIN_DIR:-}" ]; then
  TIER="$(cd "$BENCH_BIN_DIR" && pwd)/tier"
else
  if [ "${BENCH_SKIP_BUILD:-0}" != "1" ]; then
    log "building tier (release)"
    (cd "$ROOT" && cargo build --release -p tier >&2)
  fi
  TIER="$ROOT/target/release/tier"
fi
[ -x "$TIER" ] || die "no tier binary at $TIER"
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
  # The report must count every problem (hyperfine below ignores the exit status).
  set +e
  "$TIER" -C "$dir" validate >/dev/null 2>"$dir/report.txt"
  status=$?
  set -e
  last="$(tail -n 1 "$dir/report.txt")"
  [ "$status" = 1 ] && [ "$last" = "error: $size problems found; nothing was changed" ] \
    || die "tier validate of $size problems exited $status, ending with: $last"
  commands+=("-n" "$size problems" "$TIER -C $dir validate 2>/dev/null || true")
done
log "timing tier validate"
hyperfine --warmup 1 --runs "$RUNS" --style basic --export-markdown "$WORK/table.md" "${commands[@]}" >&2
cat "$WORK/table.md"
