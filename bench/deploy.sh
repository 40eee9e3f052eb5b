#!/usr/bin/env bash
# Benchmark plan and apply against per-environment state.
#
#   bash bench/deploy.sh                   # from the repository root
#
# 1. `tier plan` of a local environment of $SERVICES (1,000) services against a deployed
#    revision of the same size (applied first, with replicas = 0 so that no process starts),
#    with 5 services changed (svc-0001, and every tenth of the project after it).
# 2. A no-op `tier apply` of a running environment of $SMALL (50) services (one replica each of
#    the sample backend), after a first apply started it.
# hyperfine times both; the tables go to stdout. Everything listens on 127.0.0.1.
#
# Settings (environment variables):
#   SERVICES=1000 SMALL=50               the two projects (SERVICES at least 10)
#   RUNS=10 WARMUP=2                     hyperfine runs and warm-up runs of each
#   BENCH_SMOKE=1                        a smoke run: the same steps at tiny sizes (SERVICES=20
#                                        SMALL=3 RUNS=2 WARMUP=0 unless set), seconds long
#   BENCH_BIN_DIR=target/debug           take tier and sample-backend from that directory as
#                                        they are (builds nothing)
#                                        (a smoke run's default: target/debug)
#   BENCH_SKIP_BUILD=1                   use the binaries in target/release as they are
set -euo pipefail

if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${SERVICES:=20}" "${SMALL:=3}" "${RUNS:=2}" "${WARMUP:=0}"
fi
SERVICES="${SERVICES:-1000}"
SMALL="${SMALL:-50}"
RUNS="${RUNS:-10}"
WARMUP="${WARMUP:-2}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A smoke run builds nothing: the debug binaries, unless BENCH_BIN_DIR names others.
if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${BENCH_BIN_DIR:=${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
fi
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
[ "$SERVICES" -ge 10 ] || die "SERVICES=$SERVICES: the plan changes 5 services, spread over at least 10"
if ! command -v hyperfine >/dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  log "installing hyperfine"
  $sudo apt-get install -y hyperfine >/dev/null 2>&1 \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y hyperfine >/dev/null; } || true
  command -v hyperfine >/dev/null || die "hyperfine is missing: apt-get install -y hyperfine"
fi
[ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install -y time"
command -v python3 >/dev/null || die "python3 is needed for the project generator"

if [ -n "${BENCH_BIN_DIR:-}" ]; then
  BIN_DIR="$(cd "$BENCH_BIN_DIR" && pwd)"
else
  BIN_DIR="$ROOT/target/release"
  if [ "${BENCH_SKIP_BUILD:-0}" != "1" ]; then
    log "building tier and the sample app (release)"
    (cd "$ROOT" && cargo build --release -p tier -p sample-app >&2)
  fi
fi
TIER="$BIN_DIR/tier"
BACKEND="$BIN_DIR/sample-backend"
[ -x "$TIER" ] || die "no tier binary at $TIER"
[ -x "$BACKEND" ] || die "no sample-backend binary at $BACKEND"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tier-bench-deploy.XXXXXX")"
cleanup() {
  "$TIER" --project "$WORK/big" down big >/dev/null 2>&1 || true
  "$TIER" --project "$WORK/small" down small >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# project DIR ENV COUNT REPLICAS: COUNT services of the sample backend, each with a config.
project() {
  local dir="$1" env="$2" count="$3" replicas="$4"
  mkdir -p "$dir"
  python3 - "$dir" "$env" "$count" "$replicas" "$BACKEND" <<'PY'
import json, os, sys
directory, env, count, replicas, backend = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
lines = ['[project]', 'name = "bench"', '', f'[environments.{env}]', 'runtime = "local"', '']
for index in range(count):
    name = f"svc-{index:04d}"
    depends = [f"svc-{index - 1:04d}"] if index % 10 else []
    lines += [f"[services.{name}]", f'command = ["{backend}"]', f"replicas = {replicas}",
              'health = { http = "/healthz" }', f'config = "config/{name}"',
              f"depends_on = {json.dumps(depends)}", ""]
    os.makedirs(f"{directory}/config/{name}", exist_ok=True)
    with open(f"{directory}/config/{name}/base.json", "w") as file:
        json.dump({"text": f"{name} v1", "items": index}, file)
with open(f"{directory}/tier.toml", "w") as file:
    file.write("\n".join(lines))
PY
}

log "plan: $SERVICES services, applied once with replicas = 0"
project "$WORK/big" big "$SERVICES" 0
"$TIER" --project "$WORK/big" apply big >/dev/null
# svc-0001 and every tenth of the project after it: 0001 0101 0201 0301 0401 of 1,000.
for step in 0 1 2 3 4; do
  index="$(printf '%04d' $((1 + step * (SERVICES / 10))))"
  echo "{\"text\": \"svc-$index v2\"}" > "$WORK/big/config/svc-$index/big.json"
done
"$TIER" --project "$WORK/big" plan big | tail -1 >&2
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$WORK/plan.json" \
  "$TIER --project $WORK/big plan big" >&2

log "no-op apply: $SMALL services running one replica each"
project "$WORK/small" small "$SMALL" 1
"$TIER" --project "$WORK/small" apply small >/dev/null
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$WORK/apply.json" \
  "$TIER --project $WORK/small apply small" >&2
rss_kb=$(/usr/bin/time -f %M "$TIER" --project "$WORK/big" plan big 2>&1 >/dev/null | tail -1)

python3 - "$WORK/plan.json" "$WORK/apply.json" "$rss_kb" "$SERVICES" "$SMALL" <<'PY'
import json, sys
plan, apply = (json.load(open(path))["results"][0] for path in sys.argv[1:3])
rss, services, small = int(sys.argv[3]), sys.argv[4], sys.argv[5]
print("| command | mean ms | ± ms | min ms | max ms | target |")
print("|---|---:|---:|---:|---:|---|")
def row(name, result, target):
    mean = result["mean"] * 1000
    print(f"| {name} | {mean:.1f} | {(result['stddev'] or 0) * 1000:.1f} | {result['min'] * 1000:.1f} | {result['max'] * 1000:.1f} | {target}: {'met' if mean < float(target.split('<')[1].split()[0]) else 'NOT met'} |")
row(f"`tier plan` ({services} services against a deployed revision of the same size, 5 changed)", plan, "< 100 ms")
row(f"`tier apply` with nothing to change ({small} running services)", apply, "< 200 ms")
print()
print(f"Peak RSS of the plan: {rss / 1024:.1f} MB.")
PY
