#!/usr/bin/env bash
# Benchmark tier's local runtime: its per-service HTTP proxy side by side with nginx, and
# `tier up` of many replicas.
#
#   bash bench/local.sh                    # from the repository root
#
# 1. Proxy: one `backend` service (examples/sample-app's sample-backend, 1 replica) in a
#    generated project, `tier up bench -d`; nginx (worker_processes 2, keep-alive upstream) in
#    front of the same replica. wrk measures direct to the replica, through nginx and through
#    tier's proxy, twice, alternating (direct, nginx, tier, direct, nginx, tier). Both proxies
#    write an access log line per request to a file. Then the same at one connection
#    (wrk -t1 -c1), where latency is the proxy's own and not queueing behind a full CPU.
# 2. Start-up: one service of $REPLICAS replicas of sample-backend; hyperfine times
#    `tier up many -d` (which returns once every replica passes its health check), then the
#    agent's VmRSS is read from /proc once all are ready.
# Prints a markdown table to stdout; progress goes to stderr. Everything listens on 127.0.0.1.
#
# Settings (environment variables):
#   WRK_THREADS=2 WRK_CONNECTIONS=32 WRK_SECONDS=10    each wrk measurement
#   ROUNDS=2                                           rounds of (direct, nginx, tier)
#   SINGLE_SECONDS=5                                   each run of the extra -t1 -c1 measurement
#   REPLICAS=50 UP_RUNS=5                              the start-up benchmark
#   WARMUP_SECONDS=2                                   the wrk warm-up of each target
#   BENCH_SMOKE=1                                      a smoke run: the same steps at tiny sizes
#                                                      (WRK_CONNECTIONS=4 WRK_SECONDS=1 ROUNDS=1
#                                                      SINGLE_SECONDS=1 REPLICAS=3 UP_RUNS=2
#                                                      WARMUP_SECONDS=1 unless set), seconds long
#   BENCH_BIN_DIR=target/debug                         take tier and sample-backend from that
#                                                      directory as they are (builds nothing)
#                                                      (a smoke run's default: target/debug)
#   BENCH_SKIP_BUILD=1                                 use the binaries in target/release as they are
#   BENCH_KEEP=1                                       keep the temp directory (logs) and print where
set -euo pipefail

if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${WRK_CONNECTIONS:=4}" "${WRK_SECONDS:=1}" "${ROUNDS:=1}" "${SINGLE_SECONDS:=1}"
  : "${REPLICAS:=3}" "${UP_RUNS:=2}" "${WARMUP_SECONDS:=1}"
fi
WRK_THREADS="${WRK_THREADS:-2}"
WRK_CONNECTIONS="${WRK_CONNECTIONS:-32}"
WRK_SECONDS="${WRK_SECONDS:-10}"
ROUNDS="${ROUNDS:-2}"
SINGLE_SECONDS="${SINGLE_SECONDS:-5}"
REPLICAS="${REPLICAS:-50}"
UP_RUNS="${UP_RUNS:-5}"
WARMUP_SECONDS="${WARMUP_SECONDS:-2}"
BENCH_SKIP_BUILD="${BENCH_SKIP_BUILD:-0}"
BENCH_KEEP="${BENCH_KEEP:-0}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A smoke run builds nothing: the debug binaries, unless BENCH_BIN_DIR names others.
if [ "${BENCH_SMOKE:-0}" = "1" ]; then
  : "${BENCH_BIN_DIR:=${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
fi

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PATH="$PATH:/usr/sbin:/sbin"   # nginx lives in /usr/sbin, not always on a user's PATH

# ensure_tools COMMAND=PACKAGE...: install the Debian packages whose commands are missing,
# running `apt-get update` only when a first install fails.
ensure_tools() {
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]}"
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null 2>&1; then
    $SUDO apt-get update >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null
  fi
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || die "${pair%%=*} still missing after installing ${pair#*=}"
  done
}

ensure_tools nginx=nginx wrk=wrk hyperfine=hyperfine curl=curl
command -v python3 >/dev/null || die "python3 is needed to read JSON and wrk's output"

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
if [ -n "${BENCH_BIN_DIR:-}" ]; then
  BIN_DIR="$(cd "$BENCH_BIN_DIR" && pwd)" || die "BENCH_BIN_DIR=$BENCH_BIN_DIR is not a directory"
else
  BIN_DIR="$TARGET/release"
  if [ "$BENCH_SKIP_BUILD" != "1" ]; then
    log "building tier and the sample app (release)"
    (cd "$ROOT" && cargo build --release -p tier -p sample-app >&2)
  fi
fi
TIER="$BIN_DIR/tier"
BACKEND="$BIN_DIR/sample-backend"
[ -x "$TIER" ] || die "no tier binary at $TIER"
[ -x "$BACKEND" ] || die "no sample-backend binary at $BACKEND"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tier-bench-local.XXXXXX")"
NGINX_PID=""
UP_PROJECTS=()   # "DIR ENV" of every environment this script may have started

cleanup() {
  local status=$? entry
  trap - EXIT INT TERM
  for entry in "${UP_PROJECTS[@]+"${UP_PROJECTS[@]}"}"; do
    timeout 60 "$TIER" --project "${entry% *}" down "${entry#* }" >/dev/null 2>&1 || true
  done
  if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
    kill -QUIT "$NGINX_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NGINX_PID" 2>/dev/null || true
  fi
  if [ "$BENCH_KEEP" = "1" ]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A TCP port on 127.0.0.1 that is free right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# status_field DIR ENV EXPR: a value from `tier status ENV --output json`; EXPR is Python over
# `s`, the environment's status object.
status_field() {
  "$TIER" --project "$1" status "$2" --output json | python3 -c '
import json, sys
env = json.load(sys.stdin)[0]
if not env.get("running"):
    sys.exit("not running: " + str(env.get("reason")))
s = env["status"]
print(eval(sys.argv[1]))' "$3"
}

# write_project DIR ENV REPLICAS: a project with one `backend` service of sample-backend.
write_project() {
  local dir="$1" env="$2" replicas="$3"
  mkdir -p "$dir/config/backend"
  cat >"$dir/tier.toml" <<EOF
[project]
name = "bench-$env"

[environments.$env]
runtime = "local"

[services.backend]
command = ["$BACKEND"]
replicas = $replicas
health = { http = "/healthz" }
config = "config/backend"
EOF
  printf '{"text": "bench"}\n' >"$dir/config/backend/base.json"
}

# ---------------------------------------------------------------------------------------------
# 1. The proxy, side by side with nginx
# ---------------------------------------------------------------------------------------------
PROXY_PROJECT="$WORK/proxy"
write_project "$PROXY_PROJECT" bench 1
"$TIER" --project "$PROXY_PROJECT" validate >&2
log "tier up bench -d"
UP_PROJECTS+=("$PROXY_PROJECT bench")
timeout 120 "$TIER" --project "$PROXY_PROJECT" up bench -d >&2
TIER_URL="$(status_field "$PROXY_PROJECT" bench 's["services"][0]["url"]')"
REPLICA_PORT="$(status_field "$PROXY_PROJECT" bench 's["services"][0]["replicas"][0]["port"]')"
AGENT_PID="$(status_field "$PROXY_PROJECT" bench 's["agent_pid"]')"
DIRECT_URL="http://127.0.0.1:$REPLICA_PORT"

NGINX_DIR="$WORK/nginx"
NGINX_PORT="$(free_port)"
mkdir -p "$NGINX_DIR/tmp"
NGINX_USER=""
if [ "$(id -u)" -eq 0 ]; then
  # Workers would run as nobody, who cannot enter the private temp directory.
  NGINX_USER="user $(id -un);"
fi
cat >"$NGINX_DIR/nginx.conf" <<EOF
$NGINX_USER
daemon off;
worker_processes 2;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log warn;

events {
    worker_connections 1024;
}

http {
    access_log $NGINX_DIR/access.log;
    client_body_temp_path $NGINX_DIR/tmp/body;
    proxy_temp_path $NGINX_DIR/tmp/proxy;
    fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
    uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
    scgi_temp_path $NGINX_DIR/tmp/scgi;

    upstream backend {
        server 127.0.0.1:$REPLICA_PORT;
        keepalive 64;
    }

    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
log "nginx on 127.0.0.1:$NGINX_PORT"
nginx -p "$NGINX_DIR" -e "$NGINX_DIR/error.log" -c "$NGINX_DIR/nginx.conf" -t >/dev/null 2>&1 \
  || { nginx -p "$NGINX_DIR" -e "$NGINX_DIR/error.log" -c "$NGINX_DIR/nginx.conf" -t; die "bad nginx config"; }
nginx -p "$NGINX_DIR" -e "$NGINX_DIR/error.log" -c "$NGINX_DIR/nginx.conf" >&2 &
NGINX_PID=$!
NGINX_URL="http://127.0.0.1:$NGINX_PORT"

# Every target must answer the replica's body before it is measured: sample-backend answers
# {"text": <its config's text>, "replica": "backend-N"}.
answers_bench() {
  curl -fsS --max-time 2 "$1/" 2>/dev/null | python3 -c '
import json, sys
try:
    body = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
sys.exit(0 if isinstance(body, dict) and body.get("text") == "bench"
         and str(body.get("replica", "")).startswith("backend-") else 1)'
}
for url in "$DIRECT_URL" "$NGINX_URL" "$TIER_URL"; do
  ok=""
  for _ in $(seq 50); do
    if answers_bench "$url"; then ok=1; break; fi
    sleep 0.1
  done
  [ -n "$ok" ] || die "$url/ does not answer {\"text\": \"bench\", \"replica\": \"backend-N\"} (it answers: $(curl -sS --max-time 2 "$url/" 2>&1 | head -c 200))"
done

# run_wrk LABEL THREADS CONNECTIONS SECONDS URL OUT: one bounded wrk run, its output kept in OUT.
run_wrk() {
  local label="$1" threads="$2" connections="$3" seconds="$4" url="$5" out="$6"
  log "wrk $label: $url/ (-t$threads -c$connections -d${seconds}s)"
  timeout $((seconds + 30)) wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency "$url/" >"$out"
}

# cpu_ticks PID...: user + system clock ticks these processes have used so far.
cpu_ticks() {
  local pid total=0
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

REPLICA_PID="$(status_field "$PROXY_PROJECT" bench 's["services"][0]["replicas"][0]["pid"]')"
NGINX_PIDS=("$NGINX_PID" $(pgrep -P "$NGINX_PID" || true))
TARGETS=("direct $DIRECT_URL" "nginx $NGINX_URL" "tier $TIER_URL")

# measure_set SET THREADS CONNECTIONS SECONDS ROUNDS: ROUNDS rounds of (direct, nginx, tier),
# with the CPU time the proxy under test and the replica used during each run.
measure_set() {
  local set="$1" threads="$2" connections="$3" seconds="$4" rounds="$5" round target name proxy
  local agent0 nginx0 replica0
  for round in $(seq "$rounds"); do
    for target in "${TARGETS[@]}"; do
      name="${target% *}"
      agent0="$(cpu_ticks "$AGENT_PID")" nginx0="$(cpu_ticks "${NGINX_PIDS[@]}")" replica0="$(cpu_ticks "$REPLICA_PID")"
      run_wrk "$name ($set, run $round)" "$threads" "$connections" "$seconds" "${target#* }" \
        "$WORK/wrk-$set-$name-$round.txt"
      case "$name" in
        tier) proxy=$(($(cpu_ticks "$AGENT_PID") - agent0)) ;;
        nginx) proxy=$(($(cpu_ticks "${NGINX_PIDS[@]}") - nginx0)) ;;
        *) proxy=0 ;;
      esac
      echo "$proxy $(($(cpu_ticks "$REPLICA_PID") - replica0)) $(getconf CLK_TCK)" \
        >"$WORK/cpu-$set-$name-$round.txt"
    done
  done
}

log "warm-up, $WARMUP_SECONDS s each"
for target in "${TARGETS[@]}"; do
  run_wrk "${target% *} (warm-up)" "$WRK_THREADS" "$WRK_CONNECTIONS" "$WARMUP_SECONDS" "${target#* }" "$WORK/warmup.txt"
done
measure_set load "$WRK_THREADS" "$WRK_CONNECTIONS" "$WRK_SECONDS" "$ROUNDS"
# One connection, one request at a time: the latency each proxy adds without queueing.
measure_set single 1 1 "$SINGLE_SECONDS" "$ROUNDS"
PROXY_RSS_KB="$(awk '/^VmRSS:/ {print $2}' "/proc/$AGENT_PID/status")"
sleep 1   # let tier's access-log writer drain its queue
# tier rotates access.log at 10 MB and keeps 3 old files, so count by the request id instead:
# its last 8 hex digits count the ids this agent made (one per request without one).
TIER_LOG_LINES="$(tail -n 1 "$PROXY_PROJECT/.tier/bench/logs/access.log" \
  | python3 -c 'import re, sys; print(int(re.search(r"request_id=\S*?([0-9a-f]{8})$", sys.stdin.read().strip()).group(1), 16) + 1)')"
NGINX_LOG_LINES="$(wc -l <"$NGINX_DIR/access.log")"

# ---------------------------------------------------------------------------------------------
# 2. `tier up` of $REPLICAS replicas to all-ready
# ---------------------------------------------------------------------------------------------
UP_PROJECT="$WORK/many"
write_project "$UP_PROJECT" many "$REPLICAS"
"$TIER" --project "$UP_PROJECT" validate >&2
UP_PROJECTS+=("$UP_PROJECT many")
DOWN="$(printf '%q ' timeout 60 "$TIER" --project "$UP_PROJECT" down many)"
UP="$(printf '%q ' timeout 120 "$TIER" --project "$UP_PROJECT" up many -d)"
log "hyperfine: tier up many -d ($REPLICAS replicas, $UP_RUNS runs)"
hyperfine --style basic --runs "$UP_RUNS" --warmup 1 --command-name "tier up many -d" \
  --prepare "$DOWN >/dev/null 2>&1 || true" \
  --cleanup "$DOWN >/dev/null 2>&1 || true" \
  --export-json "$WORK/up.json" "$UP" >&2

log "tier up many -d once more, for the agent's memory with all $REPLICAS ready"
timeout 120 "$TIER" --project "$UP_PROJECT" up many -d >/dev/null 2>&1
READY="$(status_field "$UP_PROJECT" many 's["services"][0]["ready"]')"
[ "$READY" = "$REPLICAS" ] || die "only $READY of $REPLICAS replicas are ready after tier up"
UP_AGENT_PID="$(status_field "$UP_PROJECT" many 's["agent_pid"]')"
UP_RSS_KB="$(awk '/^VmRSS:/ {print $2}' "/proc/$UP_AGENT_PID/status")"
UP_HWM_KB="$(awk '/^VmHWM:/ {print $2}' "/proc/$UP_AGENT_PID/status")"
REPLICA_RSS_KB="$(status_field "$UP_PROJECT" many 'sum(int(l.split()[1]) for r in s["services"][0]["replicas"] for l in open("/proc/%d/status" % r["pid"]) if l.startswith("VmRSS:"))')"
timeout 60 "$TIER" --project "$UP_PROJECT" down many >/dev/null 2>&1 || true

# ---------------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------------
python3 - "$WORK" "$ROUNDS" "$REPLICAS" "$UP_RSS_KB" "$UP_HWM_KB" "$REPLICA_RSS_KB" \
  "$WRK_THREADS" "$WRK_CONNECTIONS" "$WRK_SECONDS" "$SINGLE_SECONDS" <<'EOF'
import json, re, sys

(work, rounds, replicas, rss_kb, hwm_kb, replica_rss_kb,
 wrk_threads, wrk_connections, wrk_seconds, single_seconds) = sys.argv[1:]
rounds = int(rounds)
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}

def wrk(set_, name, round_):
    text = open(f"{work}/wrk-{set_}-{name}-{round_}.txt").read()
    def latency(pct):
        value, unit = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()
        return float(value) * UNIT[unit]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(g) for g in m.groups())
    proxy_ticks, replica_ticks, hz = map(int, open(f"{work}/cpu-{set_}-{name}-{round_}.txt").read().split())
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    return {
        "proxy_us": proxy_ticks / hz / requests * 1e6,
        "replica_us": replica_ticks / hz / requests * 1e6,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50": latency(50),
        "p99": latency(99),
        "errors": errors,
    }

label = {"direct": "direct to the replica", "nginx": "nginx (keepalive 64)", "tier": "tier proxy"}

def table(set_, title):
    runs = {(n, r): wrk(set_, n, r) for r in range(1, rounds + 1) for n in ("direct", "nginx", "tier")}
    print(f"**{title}**")
    print()
    print("| target | run | requests/s | p50 ms | p99 ms | added p50 ms | added p99 ms | proxy CPU µs/req | replica CPU µs/req | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in range(1, rounds + 1):
        direct = runs[("direct", r)]
        for n in ("direct", "nginx", "tier"):
            m = runs[(n, r)]
            added50 = added99 = proxy_cpu = "–"
            if n != "direct":
                added50 = f"{m['p50'] - direct['p50']:+.3f}"
                added99 = f"{m['p99'] - direct['p99']:+.3f}"
                proxy_cpu = f"{m['proxy_us']:.1f}"
            print(f"| {label[n]} | {r} | {m['rps']:,.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {added50} | {added99} | {proxy_cpu} | {m['replica_us']:.1f} | {m['errors']} |")
    print()
    # Targets, judged on each round (the same round's direct run is the baseline).
    for r in range(1, rounds + 1):
        d, n, t = runs[("direct", r)], runs[("nginx", r)], runs[("tier", r)]
        thr = "met" if t["rps"] >= n["rps"] else "NOT met"
        lat = "met" if (t["p50"] - d["p50"]) <= (n["p50"] - d["p50"]) else "NOT met"
        print(f"- run {r}: tier throughput ≥ nginx's: {thr} ({t['rps']:,.0f} vs {n['rps']:,.0f} req/s); "
              f"tier added p50 ≤ nginx's: {lat} ({t['p50'] - d['p50']:+.3f} vs {n['p50'] - d['p50']:+.3f} ms)")
    print()

table("load", f"Under load: wrk -t{wrk_threads} -c{wrk_connections} -d{wrk_seconds}s")
table("single", f"One connection: wrk -t1 -c1 -d{single_seconds}s")

up = json.load(open(f"{work}/up.json"))["results"][0]
mean, sd = up["mean"], up.get("stddev") or 0.0
lo, hi = min(up["times"]), max(up["times"])
rss_mb, hwm_mb = int(rss_kb) / 1024, int(hwm_kb) / 1024
print()
print(f"| command | mean s | ± s | min s | max s | agent VmRSS MB (all ready) | agent VmHWM MB | {replicas} replicas' VmRSS MB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
print(f"| `tier up many -d` ({replicas} replicas to all-ready) | {mean:.3f} | {sd:.3f} | {lo:.3f} | {hi:.3f} | {rss_mb:.1f} | {hwm_mb:.1f} | {int(replica_rss_kb) / 1024:.1f} |")
print()
print(f"- under 2 s to all-ready: {'met' if mean < 2 else 'NOT met'} (mean {mean:.3f} s, max {hi:.3f} s); "
      f"agent RSS under 30 MB: {'met' if rss_mb < 30 else 'NOT met'} ({rss_mb:.1f} MB)")
EOF

cat <<EOF

- tier's agent VmRSS after the proxy runs: $(awk "BEGIN {printf \"%.1f\", $PROXY_RSS_KB / 1024}") MB.
- requests logged to the access log, warm-up included: tier $TIER_LOG_LINES (by request id: tier keeps only the last ~40 MB), nginx $NGINX_LOG_LINES.
- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sm); $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'), $(hyperfine --version).
- GET / in the order direct, nginx, tier, $ROUNDS rounds per table; wrk runs on the same cores as the proxies and the replica.

Reproduce: \`bash bench/local.sh\` (WRK_THREADS=$WRK_THREADS WRK_CONNECTIONS=$WRK_CONNECTIONS WRK_SECONDS=$WRK_SECONDS ROUNDS=$ROUNDS SINGLE_SECONDS=$SINGLE_SECONDS REPLICAS=$REPLICAS UP_RUNS=$UP_RUNS WARMUP_SECONDS=$WARMUP_SECONDS).
EOF
