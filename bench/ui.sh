#!/usr/bin/env bash
# Benchmark `tier ui` on a large project: 1,000 services × 10 local environments, each
# environment applied once with replicas = 0, so that every cell has a deployed revision and no
# process runs (the cells read "stopped").
#
#   bash bench/ui.sh                       # from the repository root
#
# 1. Setup (timed apart, not part of the figures): generate the project, `tier apply` each
#    environment, `tier down` it so that no agent stays.
# 2. `tier ui --listen 127.0.0.1:<free port>`; the URL is read from its stdout.
# 3. The server's answer: curl's time_total of `/` (the matrix page) and of `/api/matrix`,
#    RUNS each after one warm-up, median.
# 4. First full paint in headless Chromium (Debian's chromium and chromedriver, driven by
#    bench/ui-paint.py over WebDriver), PAINT_RUNS page loads, each in a fresh browser:
#    first-contentful-paint, the matrix complete (all rows parsed) and painted, loadEventEnd.
# 5. `tier ui`'s VmRSS and VmHWM from /proc after the page loads.
# Prints a markdown table to stdout; progress goes to stderr. Everything listens on 127.0.0.1.
#
# bench/gen-project.py is not used: most of its environments are kubernetes ones, which would
# need a cluster to apply.
#
# Settings (environment variables):
#   SERVICES=1000 ENVS=10 RUNS=5 PAINT_RUNS=5
#   BENCH_SMOKE=1                          a smoke run: the same steps at tiny sizes (SERVICES=10
#                                          ENVS=2 RUNS=2 PAINT_RUNS=1 unless set), seconds long
#   BENCH_BIN_DIR=target/debug             take tier from that directory as it is (builds nothing)
#                                          (a smoke run's default: target/debug)
#   BENCH_SKIP_BUILD=1                     use the tier binary in the target directory as it is
#   BENCH_KEEP=1                           keep the temp directory (logs) and print where
set -euo pipefail

if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${SERVICES:=10}" "${ENVS:=2}" "${RUNS:=2}" "${PAINT_RUNS:=1}"
fi
SERVICES="${SERVICES:-1000}"
ENVS="${ENVS:-10}"
RUNS="${RUNS:-5}"
PAINT_RUNS="${PAINT_RUNS:-5}"
BENCH_KEEP="${BENCH_KEEP:-0}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A smoke run builds nothing: the debug binaries, unless BENCH_BIN_DIR names others.
if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${BENCH_BIN_DIR:=${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

for tool in curl python3 /usr/bin/chromium /usr/bin/chromedriver; do
  command -v "$tool" >/dev/null || die "$tool is needed (Debian: apt-get install -y chromium chromium-driver curl python3)"
done

if [ -n "${BENCH_BIN_DIR:-}" ]; then
  TIER="$(cd "$BENCH_BIN_DIR" && pwd)/tier"
  [ -x "$TIER" ] || die "no $TIER (BENCH_BIN_DIR=$BENCH_BIN_DIR)"
else
  if [ "${BENCH_SKIP_BUILD:-0}" != "1" ]; then
    log "building tier (release)"
    (cd "$ROOT" && cargo build --release -p tier >&2)
  fi
  TIER="$TARGET/release/tier"
  [ -x "$TIER" ] || die "no $TIER: build it, or unset BENCH_SKIP_BUILD"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tier-bench-ui.XXXXXX")"
PROJECT="$WORK/project"
UI_PID=""
cleanup() {
  if [ -n "$UI_PID" ]; then
    kill "$UI_PID" 2>/dev/null || true
    wait "$UI_PID" 2>/dev/null || true
  fi
  for env in $(cat "$WORK/envs" 2>/dev/null); do
    "$TIER" --project "$PROJECT" down "$env" >/dev/null 2>&1 || true
  done
  if [ "$BENCH_KEEP" = "1" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

# The project: SERVICES services of any program (nothing starts), replicas = 0, ENVS local
# environments. Service names are DNS-1035 labels, as cell ids need.
mkdir -p "$PROJECT"
python3 - "$PROJECT" "$SERVICES" "$ENVS" "$WORK/envs" <<'PY'
import sys
directory, count, envs, envs_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
names = ["dev", "stage", "qa", "perf", "demo", "preview", "team-alpha", "team-beta",
         "team-gamma", "team-delta"]
names = (names + [f"env-{i:02d}" for i in range(len(names), envs)])[:envs]
lines = ["[project]", 'name = "bench-ui"', ""]
for name in names:
    lines += [f"[environments.{name}]", 'runtime = "local"', ""]
for index in range(count):
    service = f"svc-{index:04d}"
    depends = [f"svc-{index - 1:04d}"] if index % 10 else []
    lines += [f"[services.{service}]", 'command = ["/bin/false"]', "replicas = 0",
              f'version = "1.{index % 20}.{index % 7}"', 'health = { http = "/healthz" }',
              f"depends_on = {depends!r}".replace("'", '"'), ""]
with open(f"{directory}/tier.toml", "w") as file:
    file.write("\n".join(lines))
with open(envs_file, "w") as file:
    file.write("\n".join(names) + "\n")
PY
mapfile -t ENV_NAMES < "$WORK/envs"

log "setup: apply $SERVICES services with replicas = 0 in ${#ENV_NAMES[@]} environments"
setup_start=$(now_ms)
for env in "${ENV_NAMES[@]}"; do
  start=$(now_ms)
  "$TIER" --project "$PROJECT" apply "$env" >"$WORK/apply-$env.log" 2>&1 \
    || { cat "$WORK/apply-$env.log" >&2; die "tier apply $env failed"; }
  applied=$(now_ms)
  "$TIER" --project "$PROJECT" down "$env" >"$WORK/down-$env.log" 2>&1 \
    || { cat "$WORK/down-$env.log" >&2; die "tier down $env failed"; }
  log "  $env: apply $((applied - start)) ms, down $(($(now_ms) - applied)) ms"
done
setup_ms=$(($(now_ms) - setup_start))
log "setup took $setup_ms ms"

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log "tier ui --listen 127.0.0.1:$PORT"
"$TIER" --project "$PROJECT" ui --listen "127.0.0.1:$PORT" >"$WORK/ui.out" 2>"$WORK/ui.err" &
UI_PID=$!
URL=""
for _ in $(seq 100); do
  URL="$(head -1 "$WORK/ui.out" 2>/dev/null || true)"
  [ -n "$URL" ] && break
  kill -0 "$UI_PID" 2>/dev/null || { cat "$WORK/ui.err" >&2; die "tier ui stopped"; }
  sleep 0.1
done
[ -n "$URL" ] || { cat "$WORK/ui.err" >&2; die "tier ui printed no URL within 10 s"; }
BASE="${URL%%/?token=*}"
# The first matrix is read before the first answer; wait for it (bounded).
for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$BASE/api/matrix")" = "200" ] && break
  sleep 0.1
done
cells=$(curl -s -m 10 "$BASE/api/matrix" | python3 -c '
import json, sys
m = json.load(sys.stdin)
cells = [c for row in m["cells"].values() for c in row.values()]
print(len(m["services"]), len(m["environments"]), sum(c["health"] == "stopped" for c in cells))')
read -r rows columns stopped <<<"$cells"
[ "$rows" = "$SERVICES" ] && [ "$columns" = "${#ENV_NAMES[@]}" ] \
  || die "the matrix has $rows services × $columns environments, not $SERVICES × ${#ENV_NAMES[@]}"
log "matrix: $rows services × $columns environments, $stopped cells stopped"

# median_curl PATH: the median of RUNS time_total (ms) after one warm-up; also the body size.
median_curl() {
  local path="$1" times=()
  curl -s -o /dev/null -m 10 "$BASE$path"
  for _ in $(seq "$RUNS"); do
    times+=("$(curl -s -o /dev/null -m 10 -w '%{time_total} %{size_download}' "$BASE$path")")
  done
  printf '%s\n' "${times[@]}" | python3 -c '
import statistics, sys
runs = [line.split() for line in sys.stdin if line.strip()]
ms = [float(t) * 1000 for t, _ in runs]
print(f"{statistics.median(ms):.1f} {min(ms):.1f} {max(ms):.1f} {int(runs[-1][1])}")'
}
log "server: $RUNS requests each of / and /api/matrix"
read -r page_ms page_min page_max page_bytes <<<"$(median_curl /)"
read -r json_ms json_min json_max json_bytes <<<"$(median_curl /api/matrix)"

log "browser: $PAINT_RUNS page loads in headless Chromium"
python3 "$ROOT/bench/ui-paint.py" "$URL" --runs "$PAINT_RUNS" --rows "$SERVICES" >"$WORK/paint.json"
sed '$d' "$WORK/paint.json" >&2

status_kb() { awk -v key="$1:" '$1 == key { print $2 }' "/proc/$UI_PID/status"; }
rss_kb=$(status_kb VmRSS)
hwm_kb=$(status_kb VmHWM)

python3 - "$WORK/paint.json" <<PY
import json, os, sys
summary = json.loads(open(sys.argv[1]).read().splitlines()[-1])["summary"]
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown")
mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
def verdict(value, limit):
    return "met" if value < limit else "NOT met"
painted = summary["painted"]
answer = max($page_ms, $json_ms)
rss = $rss_kb / 1024
print(f"Machine: $(nproc) cores ({cpu}), {mem_kb / 1024 / 1024:.0f} GiB. "
      f"Matrix: $rows services × $columns environments ($stopped cells stopped). "
      f"Setup (not measured below): {$setup_ms / 1000:.1f} s for ${#ENV_NAMES[@]} applies and downs.")
print()
print("| measure | median | min | max | target |")
print("|---|---:|---:|---:|---|")
print(f"| \`GET /\` (matrix page, {$page_bytes / 1024:.0f} KiB), curl time_total, $RUNS runs | $page_ms ms | $page_min ms | $page_max ms | < 100 ms: {verdict($page_ms, 100)} |")
print(f"| \`GET /api/matrix\` ({$json_bytes / 1024:.0f} KiB), curl time_total, $RUNS runs | $json_ms ms | $json_min ms | $json_max ms | < 100 ms: {verdict($json_ms, 100)} |")
print(f"| Chromium first-contentful-paint, {summary['runs']} loads | {summary['fcp']:.0f} ms | | | |")
print(f"| Chromium matrix complete ($rows rows parsed) | {summary['parsed']:.0f} ms | | | |")
print(f"| Chromium matrix painted (two frames after it is complete) | {painted:.0f} ms | | {summary['max_painted']:.0f} ms | < 1 s: {verdict(painted, 1000)} |")
if "lcp" in summary:
    print(f"| Chromium largest-contentful-paint | {summary['lcp']:.0f} ms | | | |")
print(f"| Chromium loadEventEnd | {summary['load_event_end']:.0f} ms | | | |")
print(f"| \`tier ui\` VmRSS after the loads (VmHWM) | {rss:.1f} MB ({$hwm_kb / 1024:.1f} MB) | | | < 50 MB: {verdict(rss, 50)} |")
PY
