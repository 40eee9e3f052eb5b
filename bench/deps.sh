#!/usr/bin/env bash
# Benchmark `tier deps why <lib>` across 200 services, side by side with the by-hand way:
# `cargo tree -i <lib>` run in every service.
#
#   bash bench/deps.sh                     # from the repository root
#
# 1. bench/gen-deps-project.py writes a tier project of $SERVICES services into a temp
#    directory. Each service is a real tiny Cargo package (services/<name>/Cargo.toml and
#    src/main.rs) depending on crates this repository itself uses, so that the local cargo
#    cache has them and nothing touches the network; its Cargo.lock is made by
#    `cargo generate-lockfile --offline` (once per distinct manifest, copied with the root
#    package renamed to the services that share it). Services vary: web services, workers
#    without the HTTP stack, small command-line tools without serde_json.
# 2. Counts the services that lock $LIBRARY three ways and stops unless they agree: from the
#    lockfiles' text (the generator), from `tier deps why --output json`, and from
#    `cargo tree -i` in each service (exit 0: found; "did not match any packages": not found;
#    anything else is an error). That cargo pass also runs under /usr/bin/time -v.
# 3. hyperfine: `tier deps why $LIBRARY` (text and JSON output) with $RUNS runs after a
#    warm-up, then the by-hand loop with $BYHAND_RUNS runs (it takes tens of seconds a run;
#    the counting pass has already warmed the caches); /usr/bin/time -v for tier's peak RSS.
# Prints a markdown table to stdout; progress goes to stderr. Everything is offline but a first
# `cargo fetch --locked` of this workspace's packages for every platform (for `--target all`).
#
# Settings (environment variables):
#   SERVICES=200 LIBRARY=itoa             the generated project and the library asked about
#   RUNS=20 BYHAND_RUNS=3                 hyperfine runs for tier and for the cargo loop
#   TIER_BIN=path/to/tier                 measure that binary instead of building one
#   BENCH_BIN_DIR=target/debug            take tier from that directory as it is (builds nothing)
#                                         (a smoke run's default: target/debug)
#   BENCH_SKIP_BUILD=1                    use target/release/tier as it is
#   BENCH_SMOKE=1                         a smoke run: the same steps at tiny sizes (SERVICES=10,
#                                         every kind of service once; RUNS=2 BYHAND_RUNS=1
#                                         unless set), seconds long
#   BENCH_KEEP=1                          keep the generated project and print where
set -euo pipefail

if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${SERVICES:=10}" "${RUNS:=2}" "${BYHAND_RUNS:=1}"
fi
SERVICES="${SERVICES:-200}"
LIBRARY="${LIBRARY:-itoa}"
RUNS="${RUNS:-20}"
BYHAND_RUNS="${BYHAND_RUNS:-3}"
BENCH_SKIP_BUILD="${BENCH_SKIP_BUILD:-0}"
BENCH_KEEP="${BENCH_KEEP:-0}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A smoke run builds nothing: the debug binaries, unless BENCH_BIN_DIR names others.
if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${BENCH_BIN_DIR:=${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
fi
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_tool COMMAND PACKAGE: install a Debian package when its command is missing.
ensure_tool() {
  local cmd="$1" pkg="$2"
  command -v "$cmd" >/dev/null 2>&1 && return 0
  log "installing $pkg (for $cmd)"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  if ! $sudo apt-get install -y "$pkg" >/dev/null 2>&1; then
    $sudo apt-get update >/dev/null
    $sudo apt-get install -y "$pkg" >/dev/null
  fi
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing $pkg"
}
ensure_tool hyperfine hyperfine
ensure_tool /usr/bin/time time
command -v python3 >/dev/null || die "python3 is needed for the generator"
command -v cargo >/dev/null || die "cargo is needed (it makes the lockfiles and is the peer)"

if [ -n "${TIER_BIN:-}" ]; then
  TIER="$TIER_BIN"
elif [ -n "${BENCH_BIN_DIR:-}" ]; then
  TIER="$(cd "$BENCH_BIN_DIR" && pwd)/tier"
else
  if [ "$BENCH_SKIP_BUILD" != "1" ]; then
    log "building tier (release)"
    (cd "$ROOT" && cargo build --release -p tier >&2)
  fi
  TIER="$ROOT/target/release/tier"
fi
[ -x "$TIER" ] || die "$TIER is not an executable"
"$TIER" deps why --help >/dev/null 2>&1 || die "$TIER has no \`deps why\` command"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tier-bench-deps.XXXXXX")"
cleanup() {
  if [ "$BENCH_KEEP" = "1" ]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
PROJECT="$WORK/project"

# The services lock the packages of this workspace's Cargo.lock, and `cargo tree --target all`
# reads every platform's: a build downloads only this one's, so fetch the rest (a no-op once
# they are in the cargo cache; the only step that may use the network).
log "cargo fetch --locked: this workspace's packages for every platform"
(cd "$ROOT" && cargo fetch --locked --quiet >&2)

log "generating $SERVICES Cargo services and their lockfiles (cargo generate-lockfile --offline)"
python3 "$ROOT/bench/gen-deps-project.py" "$PROJECT" --services "$SERVICES" \
  --library "$LIBRARY" > "$WORK/summary.json"
cat "$WORK/summary.json" >&2

# The by-hand way. --locked: use each Cargo.lock as it is (fails instead of re-resolving);
# --target all: every platform's packages, as a lockfile holds them; default edges (normal,
# build, dev), as a lockfile holds them. stderr and the exit code of the services that do
# not use the library are dropped, so that the loop itself succeeds.
CARGO_TREE="cargo tree --offline --locked --target all -i $LIBRARY"
BYHAND="for d in $PROJECT/services/*; do (cd \$d && $CARGO_TREE >/dev/null 2>&1) || true; done"

log "counting the services that lock $LIBRARY: tier deps why --output json"
set +e
"$TIER" --project "$PROJECT" deps why "$LIBRARY" --output json > "$WORK/why.json" 2> "$WORK/why.err"
why_status=$?
set -e
if [ "$why_status" -ne 0 ]; then
  cat "$WORK/why.err" >&2
  die "tier deps why exited with $why_status"
fi

log "counting the services that lock $LIBRARY: $CARGO_TREE in each service"
# One pass with exit codes kept, under /usr/bin/time -v: its peak RSS is the largest cargo's.
/usr/bin/time -v -o "$WORK/cargo.time" bash -c '
  for d in "$1"/services/*; do
    if (cd "$d" && $2 >/dev/null 2>"$3/tree.err"); then
      echo found
    elif grep -q "did not match any packages" "$3/tree.err"; then
      echo absent
    else
      echo "error: cargo tree failed in $d:" >&2; cat "$3/tree.err" >&2; exit 1
    fi
  done' count "$PROJECT" "$CARGO_TREE" "$WORK" > "$WORK/cargo.count"

log "timing tier deps why $LIBRARY ($RUNS runs)"
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$WORK/tier.json" \
  -n "tier deps why $LIBRARY" "$TIER --project $PROJECT deps why $LIBRARY" \
  -n "tier deps why $LIBRARY --output json" "$TIER --project $PROJECT deps why $LIBRARY --output json" >&2

log "timing the by-hand loop: $CARGO_TREE in each of $SERVICES services ($BYHAND_RUNS runs)"
hyperfine -N --runs "$BYHAND_RUNS" --export-json "$WORK/byhand.json" \
  -n "cargo tree -i $LIBRARY in each service" "bash -c '$BYHAND'" >&2

/usr/bin/time -v -o "$WORK/tier.time" "$TIER" --project "$PROJECT" deps why "$LIBRARY" >/dev/null
/usr/bin/time -v -o "$WORK/tier-json.time" "$TIER" --project "$PROJECT" deps why "$LIBRARY" --output json >/dev/null

python3 - "$WORK" "$LIBRARY" "$CARGO_TREE" <<'PY'
import json, re, sys
work, library, cargo_tree = sys.argv[1:4]
summary = json.load(open(f"{work}/summary.json"))

def rss_mb(path):
    text = open(path).read()
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024

def services_in(why):
    # `tier deps why --output json`: {"library": ..., "services": [{"service": ...}, ...]}
    services = why["services"] if isinstance(why, dict) else why
    return len(services)

tier_count = services_in(json.load(open(f"{work}/why.json")))
cargo_lines = open(f"{work}/cargo.count").read().split()
cargo_count = cargo_lines.count("found")
lock_count = summary["services_locking_library"]
tier_text, tier_json = json.load(open(f"{work}/tier.json"))["results"]
byhand = json.load(open(f"{work}/byhand.json"))["results"][0]

print(f"{summary['services']} services ({summary['kinds']['web']} web, {summary['kinds']['worker']} workers, "
      f"{summary['kinds']['tool']} tools), {summary['packages_total']:,} locked packages: "
      f"{summary['packages_min']} to {summary['packages_max']} a service, mean {summary['packages_mean']}; "
      f"{summary['distinct_manifests']} distinct manifests, their lockfiles made by "
      f"`cargo generate-lockfile --offline` in {summary['generate_lockfile_seconds']} s.")
print()
print(f"Services locking `{library}`: lockfiles {lock_count}, `tier deps why` {tier_count}, "
      f"`cargo tree -i` {cargo_count} of {len(cargo_lines)}.")
print()
print("| command | runs | mean ms | ± ms | min ms | max ms | services found | peak RSS MB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
def row(name, result, found, rss):
    ms = lambda seconds: f"{seconds * 1000:,.1f}"
    print(f"| {name} | {len(result['times'])} | {ms(result['mean'])} | {ms(result['stddev'] or 0)} | "
          f"{ms(result['min'])} | {ms(result['max'])} | {found} | {rss:.1f} |")
row(f"`tier deps why {library}`", tier_text, tier_count, rss_mb(f"{work}/tier.time"))
row(f"`tier deps why {library} --output json`", tier_json, tier_count, rss_mb(f"{work}/tier-json.time"))
row(f"`{cargo_tree}` in each of {len(cargo_lines)} services (largest cargo's RSS)", byhand, cargo_count,
    rss_mb(f"{work}/cargo.time"))
print()
met = tier_text["mean"] < 1.0
print(f"Target `tier deps why` under 1 s: {'met' if met else 'NOT met'} "
      f"({tier_text['mean'] * 1000:.1f} ms mean; the by-hand loop takes {byhand['mean']:.1f} s, "
      f"{byhand['mean'] / tier_text['mean']:,.0f}x as long).")
if not (tier_count == cargo_count == lock_count):
    print()
    print("**The counts differ**: the two answers are not the same.")
    sys.exit(1)
PY
