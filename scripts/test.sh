#!/usr/bin/env bash
# The tests, with everything they need: the README's test command, and what CI runs.
#
#   bash scripts/test.sh [cargo test arguments...]
#   bash scripts/test.sh --tools          only install what is missing
#
# Installs what is missing, then runs `cargo test --workspace --all-features` with any extra
# arguments (`-- --test-threads 1`, a test name, ...):
# - protoc and etcd: the etcd backend (cargo feature `etcd`) builds with protoc and its tests
#   run a real etcd;
# - chromium, chromedriver and curl: the dashboard's tests drive a real headless Chromium;
# - kubernetes-validate and checkov (PyPI): tier-kube's and the Online Boutique's tests check
#   the rendered manifests with them, and fail when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pair in protoc=protobuf-compiler etcd=etcd-server chromium=chromium \
    chromedriver=chromium-driver curl=curl; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]} (Debian)" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
        || { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi
if ! command -v kubernetes-validate >/dev/null 2>&1 || ! command -v checkov >/dev/null 2>&1; then
    echo "== installing kubernetes-validate and checkov (PyPI)" >&2
    pip=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
    # A Python that marks itself externally managed (PEP 668) takes them only with its consent.
    "${pip[@]}" kubernetes-validate checkov 2>/dev/null \
        || "${pip[@]}" --break-system-packages kubernetes-validate checkov
fi

if [ "${1:-}" = --tools ]; then exit 0; fi
exec cargo test --workspace --all-features "$@"
