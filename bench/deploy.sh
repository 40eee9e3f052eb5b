#!/usr/bin/env bash
# Benchmark plan and apply against per-environment state.
#
#   bash bench/deploy.sh                   # from the repository root
#
# 1. `tier plan` of a 1,000-service local environment against a deployed revision of the same
#    size (applied first, with replicas = 0 so that no process starts), with 5 services changed.
# 2. A no-op `tier apply` of a running 50-service environment (one replica each of the sample
#    backend), after a first apply started it.
# hyperfine times both; the tables go to stdout. Everything listens on 127.0.0.1.
set -euo pipefail

SERVICES="${SERVICES:-1000}"
SMALL="${SMALL:-50}"
RUNS="${RUNS:-10}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '==> %s\n' "$*" >&2; }
command -v hyperfine >/dev/null || apt-get install -y hyperfine >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y hyperfine >/dev/null; }

if [ "${BENCH_SKIP_BUILD:-0}" != "1" ]; then
  log "building tier and the sample app (release)"
  (cd "$ROOT" && cargo build --release -p tier -p sample-app >&2)
fi
TIER="$ROOT/target/release/tier"
BACKEND="$ROOT/target/release/sample-backend"

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
for index in 0001 0101 0201 0301 0401; do
  echo "{\"text\": \"svc-$index v2\"}" > "$WORK/big/config/svc-$index/big.json"
done
"$TIER" --project "$WORK/big" plan big | tail -1 >&2
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$WORK/plan.json" \
  "$TIER --project $WORK/big plan big" >&2

log "no-op apply: $SMALL services running one replica each"
project "$WORK/small" small "$SMALL" 1
"$TIER" --project "$WORK/small" apply small >/dev/null
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$WORK/apply.json" \
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
    print(f"| {name} | {mean:.1f} | {result['stddev'] * 1000:.1f} | {result['min'] * 1000:.1f} | {result['max'] * 1000:.1f} | {target}: {'met' if mean < float(target.split('<')[1].split()[0]) else 'NOT met'} |")
row(f"`tier plan` ({services} services against a deployed revision of the same size, 5 changed)", plan, "< 100 ms")
row(f"`tier apply` with nothing to change ({small} running services)", apply, "< 200 ms")
print()
print(f"Peak RSS of the plan: {rss / 1024:.1f} MB.")
PY
