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
# Needs protoc and etcd: apt-get install -y protobuf-compiler etcd-server
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

for tool in protoc etcd; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool is missing: apt-get install -y protobuf-compiler etcd-server" >&2
        exit 1
    fi
done

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/ { print $2 }') GiB, $(uname -sm)"
echo "disk under ${1:-${TMPDIR:-/tmp}}: $(df -h --output=source,fstype "${1:-${TMPDIR:-/tmp}}" | tail -1 | tr -s ' ')"
echo "date: $(date -u +%Y-%m-%d)"
cargo build --quiet --release -p tier --features etcd
export TIER_BIN="$ROOT/target/release/tier"
cargo bench --quiet -p tier-store --features etcd --bench store -- "$@"
