#!/usr/bin/env bash
# Benchmark the config store side by side, in one run on this machine: the embedded redb store
# and a real etcd 3.4 (through tier-store's EtcdStore over gRPC), both durable, and the HTTP API
# that services use, served by the real binary (`tier store serve --backend file:PATH`, every
# change written in one transaction with its audit record).
#
#   bash bench/store.sh [DATA_PARENT]      # from the repository root
#
# Builds the tier binary (cargo build --release -p tier --features etcd) and
# crates/tier-store/benches/store.rs in release mode (cargo bench, feature etcd), starts etcd
# on free 127.0.0.1 ports and the API server on another, with their data in a temporary
# directory under DATA_PARENT (the system's temporary directory by default; use a directory on
# the disk you want measured), and measures for each: sequential put latency p50/p99, put
# throughput with 16 concurrent clients, watch delivery latency p50/p99 with 1,000 watchers on
# one prefix (through the API: 1,000 SSE streams), and peak RSS. Prints the machine and a
# markdown table to stdout; progress goes to stderr.
# Needs protoc and etcd: apt-get install -y protobuf-compiler etcd-server (protoc only to build).
#
# Settings (environment variables):
#   BENCH_BIN_DIR=target/debug     take tier from that directory and the benchmark program from
#                                  its deps/ (as `cargo build -p tier-store --features etcd
#                                  --bench store` leaves it there); builds nothing
#                                  (a smoke run's default: target/debug)
#   STORE_BENCH_BIN=path           run that build of benches/store.rs (with BENCH_BIN_DIR)
#   BENCH_SMOKE=1                  a smoke run: exported to the benchmark program, which then
#                                  does 50 sequential puts, 1 s of throughput, 20 watchers and
#                                  5 watched puts (seconds on a debug build)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A smoke run builds nothing: the debug binaries, unless BENCH_BIN_DIR names others.
if [ "${BENCH_SMOKE:-0}" = "1" ]; then
    : "${BENCH_BIN_DIR:=${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
fi
cd "$ROOT"
export BENCH_SMOKE="${BENCH_SMOKE:-0}"

tools=(etcd)
if [ -z "${BENCH_BIN_DIR:-}" ]; then tools+=(protoc); fi
for tool in "${tools[@]}"; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool is missing: apt-get install -y protobuf-compiler etcd-server" >&2
        exit 1
    fi
done

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/ { print $2 }') GiB, $(uname -sm)"
echo "disk under ${1:-${TMPDIR:-/tmp}}: $(df -h --output=source,fstype "${1:-${TMPDIR:-/tmp}}" | tail -1 | tr -s ' ')"
echo "date: $(date -u +%Y-%m-%d)"
if [ -n "${BENCH_BIN_DIR:-}" ]; then
    BIN_DIR="$(cd "$BENCH_BIN_DIR" && pwd)"
    export TIER_BIN="$BIN_DIR/tier"
    [ -x "$TIER_BIN" ] || { echo "error: no tier binary at $TIER_BIN" >&2; exit 1; }
    bench="${STORE_BENCH_BIN:-}"
    if [ -z "$bench" ]; then
        # The newest executable that cargo's dep-info says was built from benches/store.rs
        # (deps/ holds other targets named store, the tests of other crates).
        bench="$(for info in "$BIN_DIR"/deps/store-*.d; do
            [ -e "$info" ] || continue
            candidate="${info%.d}"
            [ -x "$candidate" ] && head -1 "$info" | grep -q 'crates/tier-store/benches/store\.rs' \
                && echo "$candidate"
        done | xargs -r ls -t | head -1)"
    fi
    [ -n "$bench" ] && [ -x "$bench" ] || {
        echo "error: no build of crates/tier-store/benches/store.rs in $BIN_DIR/deps: cargo build -p tier-store --features etcd --bench store (or set STORE_BENCH_BIN)" >&2
        exit 1
    }
    "$bench" "$@"
else
    cargo build --quiet --release -p tier --features etcd
    export TIER_BIN="$ROOT/target/release/tier"
    cargo bench --quiet -p tier-store --features etcd --bench store -- "$@"
fi
