#!/usr/bin/env bash
# Benchmark otter against nginx side by side on loopback with wrk, and print a comparison.
# Not run in CI. See bench/README.md for the knobs (BENCH_* environment variables).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# ---- settings -------------------------------------------------------------------------------------
THREADS=2
CONNS="${BENCH_CONNS:-64}"
DURATION="${BENCH_DURATION:-10}"      # seconds per wrk run
RUNS="${BENCH_RUNS:-2}"               # measured runs per test and server
WARMUP="${BENCH_WARMUP:-2}"           # seconds of unmeasured warm-up per test and server; 0 = none
C1000="${BENCH_C1000:-1}"             # 0 = skip the check test with 1000 connections
NGINX_ONLY="${BENCH_NGINX_ONLY:-0}"   # 1 = skip otter (nginx anchors only)
SLOW_CLIENTS="${BENCH_SLOW_CLIENTS:-1000}" # slow downloads held at once; 0 = skip that test
SLOW_SECONDS="${BENCH_SLOW_SECONDS:-20}"   # how long they are held
INGEST_MIB="${BENCH_INGEST_MIB:-1024}"     # size of the ingest/publish file; 0 = skip
SCENARIOS="${BENCH_SCENARIOS-all}"    # bench/scenarios/<name>.sh to run: all, none, or "a b"
OUT="${BENCH_OUT:-target/bench-results.md}"
KEEP="${BENCH_KEEP:-0}"               # 1 = keep the temporary directory (logs, raw wrk output)
OTTER_BIN="${OTTER_BIN:-}"            # use this binary instead of building one
read -r -a OTTER_EXTRA_ARGS <<<"${OTTER_ARGS:-}"
FILE_SIZE=$((1024 * 1024))
BIG_SIZE=$((64 * 1024 * 1024))
SLOW_SIZE=$((16 * 1024 * 1024))
SLOW_RSS_TARGET_MIB=64
INGEST_TARGET=0.8

# The ratio each test must reach (otter / nginx).
target_of() {
  case "$1" in
    check) echo 1.2 ;;
    check-c1000) echo 1.0 ;;
    download) echo 1.0 ;;
    *) echo 0.8 ;; # streamed from disk: download-nocache, download-64m
  esac
}

# ---- helpers --------------------------------------------------------------------------------------
log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root or sudo to run: $*"
  fi
}

TMP=""
declare -A OTTER_PIDS=() OTTER_BASES=()
NGINX_PID=""
SLOW_PID=""
WRK_PID=""
POLICY_RC_CREATED=0

stop_pid() { # name pid
  local name="$1" pid="$2"
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "$name ($pid) ignored SIGTERM, killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid wrk "$WRK_PID"
  stop_pid "slow clients" "$SLOW_PID"
  local name
  for name in "${!OTTER_PIDS[@]}"; do stop_pid "otter ($name)" "${OTTER_PIDS[$name]}"; done
  stop_pid nginx "$NGINX_PID"
  if [[ $POLICY_RC_CREATED -eq 1 ]]; then
    as_root rm -f /usr/sbin/policy-rc.d || true
  fi
  if [[ -n "$TMP" && -d "$TMP" ]]; then
    if [[ "$KEEP" == 1 || $rc -ne 0 ]]; then
      log "kept $TMP (logs and raw wrk output)"
    else
      rm -rf "$TMP"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

find_nginx() {
  command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true
}

ensure_tools() {
  local missing=()
  [[ -n "$(find_nginx)" ]] || missing+=(nginx)
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  [[ ${#missing[@]} -gt 0 ]] || return 0
  log "installing ${missing[*]} with apt-get"
  # The nginx package would start a system service; we run our own nginx, so block that.
  if [[ " ${missing[*]} " == *" nginx "* && ! -e /usr/sbin/policy-rc.d ]]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
    POLICY_RC_CREATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [[ $POLICY_RC_CREATED -eq 1 ]]; then
    as_root rm -f /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=0
  fi
}

raise_nofile() {
  local want=65536 hard
  ulimit -n "$want" 2>/dev/null && return 0 # works as root
  hard="$(ulimit -Hn)"
  if [[ "$hard" == unlimited || "$hard" -ge "$want" ]]; then
    ulimit -Sn "$want" 2>/dev/null || true
  else
    ulimit -Sn "$hard" 2>/dev/null || true
  fi
}

# shellcheck source=lib/free-port.sh
source "$ROOT/bench/lib/free-port.sh"

wait_http() { # name pid url
  local name="$1" pid="$2" url="$3" code
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || return 1
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)"
    [[ "$code" != 000 ]] && return 0
    sleep 0.25
  done
  warn "$name did not answer on $url"
  return 1
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# ---- otter ----------------------------------------------------------------------------------------
# Several otters run during a session (the main one, one with --download-cache 0, a fresh one per
# memory test); each is named, and its pid, address and log are kept by name.
OTTER_BASE=""
NOCACHE_BASE=""
TOKEN="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
SHA=""
BIG_SHA=""

build_otter() {
  if [[ -z "$OTTER_BIN" ]]; then
    log "building otter (cargo build --release -p otter-cli)"
    cargo build --release -p otter-cli --bin otter
    OTTER_BIN="${CARGO_TARGET_DIR:-target}/release/otter"
  fi
  [[ -x "$OTTER_BIN" ]] || die "otter binary not found at $OTTER_BIN"
  OTTER_BIN="$(cd "$(dirname "$OTTER_BIN")" && pwd)/$(basename "$OTTER_BIN")"
}

start_otter() { # name [extra serve args...]; sets OTTER_BASES[name]
  local name="$1" port base
  shift
  port="$(free_port)"
  base="http://127.0.0.1:$port"
  mkdir -p "$TMP/otter-$name"
  log "starting otter ($name) on 127.0.0.1:$port (log: $TMP/otter-$name.log)"
  # Drop OTTER_* settings from the caller's environment (config file, database URL...), so the
  # bench runs against its own fresh data directory. RUST_LOG=warn: no per-request logging, like
  # nginx with access_log off.
  local env_args=() var
  for var in $(compgen -e); do
    if [[ "$var" == OTTER_* ]]; then env_args+=(-u "$var"); fi
  done
  env "${env_args[@]}" OTTER_ADMIN_TOKEN="$TOKEN" RUST_LOG="${RUST_LOG:-warn}" \
    "$OTTER_BIN" serve --listen "127.0.0.1:$port" --data "$TMP/otter-$name" \
    "${OTTER_EXTRA_ARGS[@]}" "$@" >"$TMP/otter-$name.log" 2>&1 &
  OTTER_PIDS[$name]=$!
  OTTER_BASES[$name]="$base"
  if ! wait_http "otter ($name)" "${OTTER_PIDS[$name]}" "$base/healthz"; then
    tail -n 30 "$TMP/otter-$name.log" >&2 || true
    die "otter ($name) did not start"
  fi
}

stop_otter() { # name
  stop_pid "otter ($1)" "${OTTER_PIDS[$1]:-}"
  unset "OTTER_PIDS[$1]"
}

api() { # curl args...; prints the body, fails (with the body printed) on HTTP errors
  curl -sS --fail-with-body -H "Authorization: Bearer $TOKEN" "$@"
}

publish_on() { # base product file version; prints the artifact's sha256
  local base="$1" product="$2" file="$3" version="$4" resp want sha
  want="$(sha256_of "$file")"
  log "publishing $(basename "$file") as $product $version on $base"
  resp="$(api -X POST -H 'Content-Type: application/json' \
    -d "{\"name\":\"$product\",\"scheme\":\"semver\"}" "$base/api/v1/products")" ||
    die "creating the product failed: $resp"
  resp="$(api -X PUT -H 'Content-Type: application/octet-stream' -H 'Expect:' \
    --data-binary "@$file" "$base/api/v1/artifacts?filename=$(basename "$file")")" ||
    die "uploading the artifact failed: $resp"
  sha="$(sed -n 's/.*"sha256"[[:space:]]*:[[:space:]]*"\([0-9a-fA-F]\{64\}\)".*/\1/p' <<<"$resp" | head -n 1)"
  [[ "$sha" == "$want" ]] || die "artifact sha256 '$sha' does not match the file ($want): $resp"
  resp="$(api -X POST -H 'Content-Type: application/json' \
    -d "{\"version\":\"$version\",\"artifact\":\"$sha\"}" "$base/api/v1/products/$product/releases")" ||
    die "creating the release failed: $resp"
  curl -sS --fail -o "$TMP/dl-check.bin" "$base/dl/$sha" || die "download from otter failed"
  [[ "$(sha256_of "$TMP/dl-check.bin")" == "$want" ]] || die "otter served different download bytes"
  rm -f "$TMP/dl-check.bin"
  echo "$sha"
}

publish_on_otter() {
  start_otter main
  OTTER_BASE="${OTTER_BASES[main]}"
  SHA="$(publish_on "$OTTER_BASE" bench "$TMP/www/bench.bin" 1.1.0)"
  BIG_SHA="$(publish_on "$OTTER_BASE" big "$TMP/www/big.bin" 1.0.0)"
  # nginx serves the exact bytes otter answers, so both sides send equivalent responses.
  curl -sS --fail-with-body -o "$TMP/www/check.json" \
    "$OTTER_BASE/api/v1/products/bench/check?current=1.0.0" ||
    die "the check endpoint failed: $(cat "$TMP/www/check.json" 2>/dev/null)"
  grep -Eq '"hasUpdate"[[:space:]]*:[[:space:]]*true' "$TMP/www/check.json" ||
    die "the check endpoint offers no update: $(cat "$TMP/www/check.json")"
  # The same image once more, from an otter that streams every download from disk.
  start_otter nocache --download-cache 0
  NOCACHE_BASE="${OTTER_BASES[nocache]}"
  publish_on "$NOCACHE_BASE" bench "$TMP/www/bench.bin" 1.1.0 >/dev/null
}

# Stand-in check response for BENCH_NGINX_ONLY=1 (same shape as otter's manifest).
write_fake_check_json() {
  local sha
  sha="$(sha256_of "$TMP/www/bench.bin")"
  printf '{"hasUpdate":true,"manifest":{"version":"1.1.0","releaseDate":null,"size":%d,"sha256":"%s","sha1":"%s","md5":"%s","url":"http://127.0.0.1/dl/bench/1.1.0/bench.bin","mandatory":false,"deprecated":false,"title":null,"summary":null,"releaseNotesUrl":null,"minSourceVersion":null,"steppingStone":false}}' \
    "$FILE_SIZE" "$sha" "$(sha1sum "$TMP/www/bench.bin" | cut -d' ' -f1)" \
    "$(md5sum "$TMP/www/bench.bin" | cut -d' ' -f1)" >"$TMP/www/check.json"
}

# ---- nginx ----------------------------------------------------------------------------------------
NGINX_PORT=""
NGINX_BASE=""

start_nginx() {
  local nginx conf prefix user_line=""
  nginx="$(find_nginx)"
  prefix="$TMP/nginx"
  conf="$prefix/nginx.conf"
  mkdir -p "$prefix"
  NGINX_PORT="$(free_port)"
  NGINX_BASE="http://127.0.0.1:$NGINX_PORT"
  # As root, nginx workers would run as "nobody" and might not reach the temporary directory.
  if [[ "$(id -u)" -eq 0 ]]; then
    user_line="user $(id -un) $(id -gn);"
  fi
  sed -e "s|@USER_LINE@|$user_line|" -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$NGINX_PORT|g" \
    -e "s|@ROOT@|$TMP/www|g" "$ROOT/bench/nginx.conf.template" >"$conf"
  "$nginx" -t -q -c "$conf" -p "$prefix/" -e "$prefix/error.log" || die "nginx rejected $conf"
  log "starting nginx on 127.0.0.1:$NGINX_PORT (config: $conf)"
  "$nginx" -c "$conf" -p "$prefix/" -e "$prefix/error.log" >"$prefix/stdout.log" 2>&1 &
  NGINX_PID=$!
  if ! wait_http nginx "$NGINX_PID" "$NGINX_BASE/check.json"; then
    tail -n 30 "$prefix/error.log" "$prefix/stdout.log" >&2 || true
    die "nginx did not start"
  fi
  curl -sS --fail -o "$TMP/dl-nginx.json" "$NGINX_BASE/check.json" || die "nginx check.json failed"
  cmp -s "$TMP/dl-nginx.json" "$TMP/www/check.json" || die "nginx served different JSON bytes"
  curl -sS --fail -o "$TMP/dl-nginx.bin" "$NGINX_BASE/bench.bin" || die "nginx download failed"
  cmp -s "$TMP/dl-nginx.bin" "$TMP/www/bench.bin" || die "nginx served different file bytes"
}

# ---- wrk ------------------------------------------------------------------------------------------
run_wrk() { # out conns duration url
  local out="$1" conns="$2" duration="$3" url="$4"
  # In the background plus `wait`, so a signal to this script is handled at once (cleanup stops wrk).
  timeout -k 5 "$WRK_TIMEOUT" \
    wrk "-t$THREADS" "-c$conns" "-d${duration}s" --timeout 5s --latency "$url" >"$out" 2>&1 &
  WRK_PID=$!
  if ! wait "$WRK_PID"; then
    warn "wrk failed for $url (see $out)"
  fi
  WRK_PID=""
}

alive_or_die() { # server
  local name
  if [[ "$1" == otter ]]; then
    for name in "${!OTTER_PIDS[@]}"; do
      if ! kill -0 "${OTTER_PIDS[$name]}" 2>/dev/null; then
        tail -n 30 "$TMP/otter-$name.log" >&2 || true
        die "otter ($name) exited during the benchmark"
      fi
    done
  fi
  if [[ "$1" == nginx ]] && ! kill -0 "$NGINX_PID" 2>/dev/null; then
    die "nginx exited during the benchmark"
  fi
}

# ---- CPU per request ------------------------------------------------------------------------------
# wrk shares the cores with the server, so a server's throughput is set by the CPU each side spends
# per request. Each measured run records the server's user and system clock ticks (every thread of
# every process) and the machine's busy ticks, before and after.
server_pids() { # server
  case "$1" in
    otter) echo "${OTTER_PIDS[main]}" ;; # the one the check tests ask
    nginx) echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')" ;;
  esac
}

cpu_ticks() { # pids...; prints "user system machine-busy" clock ticks
  local pid stat user=0 system=0 fields
  for pid in "$@"; do
    for stat in /proc/"$pid"/task/*/stat; do
      # Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
      fields="$(sed 's/^.*) //' "$stat" 2>/dev/null)" || continue
      read -r -a fields <<<"$fields"
      user=$((user + fields[11])) system=$((system + fields[12]))
    done
  done
  # The machine's busy time: user, nice, system, irq, softirq and steal.
  echo "$user $system $(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat)"
}

server_url() { # server test
  local server="$1" test="$2"
  case "$server:$test" in
    otter:check*) echo "$OTTER_BASE/api/v1/products/bench/check?current=1.0.0" ;;
    otter:download) echo "$OTTER_BASE/dl/$SHA" ;;
    otter:download-nocache) echo "$NOCACHE_BASE/dl/$SHA" ;;
    otter:download-64m) echo "$OTTER_BASE/dl/$BIG_SHA" ;;
    nginx:check*) echo "$NGINX_BASE/check.json" ;;
    nginx:download | nginx:download-nocache) echo "$NGINX_BASE/bench.bin" ;;
    nginx:download-64m) echo "$NGINX_BASE/big.bin" ;;
  esac
}

SERVERS=()
bench_test() { # test conns
  local test="$1" conns="$2" run server order before
  if [[ "$WARMUP" -gt 0 ]]; then
    for server in "${SERVERS[@]}"; do
      log "$test: warm-up $server (${WARMUP}s)"
      run_wrk "$TMP/wrk/$test-$server-warmup.txt" "$conns" "$WARMUP" "$(server_url "$server" "$test")"
    done
  fi
  for run in $(seq 1 "$RUNS"); do
    # Alternate who goes first, so drift (heat, other load) does not favour one side.
    order=("${SERVERS[@]}")
    if ((run % 2 == 0 && ${#SERVERS[@]} == 2)); then
      order=("${SERVERS[1]}" "${SERVERS[0]}")
    fi
    for server in "${order[@]}"; do
      alive_or_die "$server"
      log "$test: run $run $server (-c$conns -d${DURATION}s)"
      # shellcheck disable=SC2046 # the pids are words
      before="$(cpu_ticks $(server_pids "$server"))"
      run_wrk "$TMP/wrk/$test-$server-$run.txt" "$conns" "$DURATION" "$(server_url "$server" "$test")"
      # shellcheck disable=SC2046
      echo "$before $(cpu_ticks $(server_pids "$server"))" >"$TMP/wrk/$test-$server-$run.cpu"
    done
  done
}

wrk_stat() { # file stat
  local f="$1"
  [[ -s "$f" ]] || return 0
  case "$2" in
    rps) awk '$1 == "Requests/sec:" { print $2 }' "$f" ;;
    requests) awk '$2 == "requests" && $3 == "in" { print $1 }' "$f" ;;
    transfer) awk '$1 == "Transfer/sec:" { print $2 }' "$f" ;;
    p50) awk '$1 == "50%" { print $2 }' "$f" ;;
    p99) awk '$1 == "99%" { print $2 }' "$f" ;;
    errors) awk '/Socket errors:/ { gsub(/[^0-9]+/, " "); for (i = 1; i <= NF; i++) s += $i }
                 /Non-2xx or 3xx responses:/ { s += $NF } END { print s + 0 }' "$f" ;;
  esac
}

to_mbs() { # wrk transfer figure (1024-based units) -> decimal MB/s
  awk -v v="$1" 'BEGIN {
    if (v == "") { print "n/a"; exit }
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    m = 1
    if (u == "KB") m = 1024; else if (u == "MB") m = 1024 ^ 2
    else if (u == "GB") m = 1024 ^ 3; else if (u == "TB") m = 1024 ^ 4
    x = n * m / 1e6
    printf (x < 100 ? "%.1f" : "%.0f"), x }'
}

stat_of() { local v; v="$(wrk_stat "$1" "$2")"; echo "${v:-n/a}"; }
fmt_num() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else printf "%.0f", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
meets() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "n/a") print "n/a"; else if (r + 0 >= t + 0) print "meets"; else print "BELOW" }'; }

row() { printf '| %-16s | %-3s | %11s | %11s | %5s | %6s | %9s | %9s | %9s | %9s | %9s | %9s | %9s |\n' "$@"; }

machine() {
  local cpu
  cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit: $COMMIT"
  echo "- machine: $(nproc) cores (${cpu:-unknown CPU}), $(uname -sr), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM;"
  echo "  load average at start: $LOAD_AT_START"
}

report_wrk() {
  local test target run o n r o_sum o_n n_sum n_n mean_r errs_o errs_n
  echo "## otter vs nginx (wrk)"
  echo
  echo "- otter: $OTTER_V; nginx: $NGINX_V; wrk: $WRK_V"
  echo "- wrk -t$THREADS -d${DURATION}s --timeout 5s --latency, co-located on loopback; $RUNS runs per"
  echo "  server, order alternating; ${WARMUP}s warm-up each; \`ulimit -n\` $(ulimit -n)"
  if [[ "$NGINX_ONLY" == 1 ]]; then
    echo "- check: $(wc -c <"$TMP/www/check.json") byte stand-in manifest JSON (nginx only);"
  else
    echo "- check: $(wc -c <"$TMP/www/check.json") byte JSON body, nginx serves otter's exact response;"
  fi
  echo "  download: $FILE_SIZE byte random file (\`-nocache\`: an otter with \`--download-cache 0\`);"
  echo "  download-64m: $BIG_SIZE bytes (past the cache's 16 MiB item limit); otter sends local images"
  echo "  over HTTP/1 with \`sendfile\` whether cached or not; nginx: \`sendfile on\`"
  echo "- MB/s = 10^6 bytes/s read by wrk (bodies and headers); errors = socket errors + non-2xx/3xx"
  echo
  row test run "otter req/s" "nginx req/s" ratio target "otter MB/s" "nginx MB/s" "otter p50" "nginx p50" "otter p99" "nginx p99" "errors o/n"
  row "---" "---" "---:" "---:" "---:" "---:" "---:" "---:" "---:" "---:" "---:" "---:" "---:"
  local summary=()
  for test in "${TESTS[@]}"; do
    target="$(target_of "$test")"
    o_sum=0 o_n=0 n_sum=0 n_n=0
    for run in $(seq 1 "$RUNS"); do
      local fo="$TMP/wrk/$test-otter-$run.txt" fn="$TMP/wrk/$test-nginx-$run.txt"
      o="$(wrk_stat "$fo" rps)"
      n="$(wrk_stat "$fn" rps)"
      r="$(ratio "$o" "$n")"
      errs_o="$(wrk_stat "$fo" errors)"
      errs_n="$(wrk_stat "$fn" errors)"
      [[ -n "$o" ]] && o_sum="$(awk -v a="$o_sum" -v b="$o" 'BEGIN { print a + b }')" && o_n=$((o_n + 1))
      [[ -n "$n" ]] && n_sum="$(awk -v a="$n_sum" -v b="$n" 'BEGIN { print a + b }')" && n_n=$((n_n + 1))
      row "$test" "$run" "$(fmt_num "$o")" "$(fmt_num "$n")" "$r" ">= $target" \
        "$(to_mbs "$(wrk_stat "$fo" transfer)")" "$(to_mbs "$(wrk_stat "$fn" transfer)")" \
        "$(stat_of "$fo" p50)" "$(stat_of "$fn" p50)" "$(stat_of "$fo" p99)" "$(stat_of "$fn" p99)" \
        "${errs_o:-n/a}/${errs_n:-n/a}"
    done
    mean_r="n/a"
    if ((o_n > 0 && n_n > 0)); then
      mean_r="$(awk -v a="$o_sum" -v an="$o_n" -v b="$n_sum" -v bn="$n_n" 'BEGIN { printf "%.2f", (a / an) / (b / bn) }')"
    fi
    summary+=("- $test: mean otter/nginx = $mean_r (target ≥ $target): $(meets "$mean_r" "$target")")
  done
  echo
  printf '%s\n' "${summary[@]}"
  echo
  report_cpu
}

# Microseconds of CPU per request from a run's .cpu record: "user system others", others being the
# rest of the machine's busy time (wrk, mostly).
cpu_per_request() { # test server run
  local f="$TMP/wrk/$1-$2-$3.cpu" requests
  requests="$(wrk_stat "$TMP/wrk/$1-$2-$3.txt" requests)"
  [[ -s "$f" && -n "$requests" ]] || return 0
  awk -v n="$requests" -v hz="$(getconf CLK_TCK)" '{
    us = 1e6 / hz / n; u = ($4 - $1) * us; s = ($5 - $2) * us; m = ($6 - $3) * us
    printf "%.1f %.1f %.1f\n", u, s, m - u - s }' "$f"
}

report_cpu() {
  local test target run o n budget
  [[ "$NGINX_ONLY" == 1 ]] && return 0
  echo "### CPU per check request"
  echo
  echo "Clock ticks of the server's threads and of the whole machine over each run, per request"
  echo "completed, in µs (user / system; others: the rest of the machine's busy time, wrk mostly)."
  echo "Budget: otter's CPU per request (user + system) at which, with the cores fully busy and"
  echo "wrk's cost per request unchanged, it would answer the target × nginx's requests per second:"
  echo "(nginx's + its others) / target − others."
  echo
  echo "| test | run | otter user / system | otter others | nginx user / system | nginx others | otter total | budget |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  for test in "${TESTS[@]}"; do
    [[ "$test" == check* ]] || continue
    target="$(target_of "$test")"
    for run in $(seq 1 "$RUNS"); do
      o="$(cpu_per_request "$test" otter "$run")"
      n="$(cpu_per_request "$test" nginx "$run")"
      [[ -n "$o" && -n "$n" ]] || continue
      read -r -a o <<<"$o"
      read -r -a n <<<"$n"
      budget="$(awk -v u="${n[0]}" -v s="${n[1]}" -v m="${n[2]}" -v t="$target" 'BEGIN { printf "%.1f", (u + s + m) / t - m }')"
      echo "| $test | $run | ${o[0]} / ${o[1]} | ${o[2]} | ${n[0]} / ${n[1]} | ${n[2]} | $(awk -v u="${o[0]}" -v s="${o[1]}" 'BEGIN { printf "%.1f", u + s }') | $budget |"
    done
  done
  echo
}

# ---- slow downloads: peak memory ------------------------------------------------------------------
SLOW_RESULT=""

# Holds $SLOW_CLIENTS downloads of a 16 MiB image open at once, each client reading 1 KiB a second
# (faster than --min-rate, so none is cut), against a fresh otter, and reports its peak RSS.
bench_slow_downloads() {
  local sha pid base status peak
  head -c "$SLOW_SIZE" /dev/urandom >"$TMP/slow.bin"
  start_otter slow
  base="${OTTER_BASES[slow]}"
  pid="${OTTER_PIDS[slow]}"
  sha="$(publish_on "$base" slow "$TMP/slow.bin" 1.0.0)"
  log "slow downloads: $SLOW_CLIENTS clients for ${SLOW_SECONDS}s"
  python3 - "${base#http://}" "/dl/$sha" "$SLOW_CLIENTS" "$SLOW_SECONDS" >"$TMP/slow.txt" 2>&1 <<'PY' &
import asyncio, sys
host, path, clients, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
addr, port = host.rsplit(":", 1)
started = failed = 0
async def client():
    global started, failed
    try:
        reader, writer = await asyncio.open_connection(addr, int(port), limit=1024)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head[:40])
        started += 1
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            await reader.read(1024)
            await asyncio.sleep(1)
        writer.close()
    except Exception as e:
        failed += 1
async def main():
    await asyncio.gather(*(client() for _ in range(clients)))
    print(f"started={started} failed={failed}")
asyncio.run(main())
PY
  SLOW_PID=$!
  peak=0
  while kill -0 "$SLOW_PID" 2>/dev/null; do
    status="$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)"
    [[ -n "$status" ]] && ((status > peak)) && peak="$status"
    sleep 0.5
  done
  wait "$SLOW_PID" || warn "slow download clients failed (see $TMP/slow.txt)"
  SLOW_PID=""
  status="$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)"
  [[ -n "$status" ]] && ((status > peak)) && peak="$status"
  SLOW_RESULT="$(awk -v k="$peak" 'BEGIN { printf "%.1f", k / 1024 }') $(cat "$TMP/slow.txt" | tail -n 1)"
  stop_otter slow
  rm -f "$TMP/slow.bin"
}

report_slow() {
  local mib clients
  mib="${SLOW_RESULT%% *}"
  clients="${SLOW_RESULT#* }"
  echo "## Slow downloads: peak memory"
  echo
  echo "$SLOW_CLIENTS clients download a $SLOW_SIZE byte image at once, each reading 1 KiB a second for"
  echo "${SLOW_SECONDS}s, from a fresh otter (default settings); peak RSS is the process's VmHWM."
  echo
  echo "| clients | otter peak RSS | target | result |"
  echo "|---:|---:|---:|---|"
  echo "| $SLOW_CLIENTS ($clients) | $mib MiB | ≤ $SLOW_RSS_TARGET_MIB MiB | $(awk -v m="$mib" -v t="$SLOW_RSS_TARGET_MIB" 'BEGIN { print (m + 0 <= t + 0 ? "meets" : "ABOVE") }') |"
  echo
}

# ---- ingest and publish ---------------------------------------------------------------------------
INGEST_ROWS=()

seconds_of() { # command...; runs it and prints its wall-clock seconds
  local start end
  start="$(date +%s.%N)"
  "$@" >/dev/null || die "failed: $*"
  end="$(date +%s.%N)"
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}

# A raw PUT of the file (the server hashes while it stores) and `otter release publish` (the
# whole CLI path: resumable session in 8 MiB chunks, hashed while uploading), each against
# `sha256sum` of the same file from the page cache.
bench_ingest() {
  local file="$TMP/ingest.bin" size=$((INGEST_MIB * 1024 * 1024)) sha_s put_s pub_s
  log "ingest: writing a $INGEST_MIB MiB file"
  head -c "$size" /dev/urandom >"$file"
  start_otter ingest
  api -X POST -H 'Content-Type: application/json' -d '{"name":"ingest","scheme":"semver"}' \
    "${OTTER_BASES[ingest]}/api/v1/products" >/dev/null || die "creating the ingest product failed"
  sha256sum "$file" >/dev/null # warm the page cache for both sides
  log "ingest: sha256sum, raw PUT, otter release publish"
  sha_s="$(seconds_of sha256sum "$file")"
  # -T streams the file (--data-binary would read it all into memory first).
  put_s="$(seconds_of api -T "$file" -H 'Content-Type: application/octet-stream' -H 'Expect:' \
    "${OTTER_BASES[ingest]}/api/v1/artifacts?filename=ingest.bin")"
  # A fresh otter again, so publish cannot find the bytes already stored.
  stop_otter ingest
  rm -rf "$TMP/otter-ingest"
  start_otter ingest
  api -X POST -H 'Content-Type: application/json' -d '{"name":"ingest","scheme":"semver"}' \
    "${OTTER_BASES[ingest]}/api/v1/products" >/dev/null || die "creating the ingest product failed"
  pub_s="$(seconds_of env OTTER_SERVER="${OTTER_BASES[ingest]}" OTTER_TOKEN="$TOKEN" \
    "$OTTER_BIN" release publish ingest "$file" --version 1.0.0)"
  stop_otter ingest
  rm -rf "$TMP/otter-ingest" "$file"
  INGEST_ROWS+=("| raw \`PUT /api/v1/artifacts\` | $put_s s | $sha_s s | $(ratio "$sha_s" "$put_s") | ≥ $INGEST_TARGET | $(meets "$(ratio "$sha_s" "$put_s")" "$INGEST_TARGET") |")
  INGEST_ROWS+=("| \`otter release publish\` | $pub_s s | $sha_s s | $(ratio "$sha_s" "$pub_s") | | |")
}

report_ingest() {
  echo "## Ingest and publish"
  echo
  echo "A $INGEST_MIB MiB random file (in the page cache) sent to a fresh otter on loopback, against"
  echo "\`sha256sum\` of the same file; ratio = sha256sum time / otter time (higher is better)."
  echo
  echo "| what | otter | sha256sum | ratio | target | result |"
  echo "|---|---:|---:|---:|---:|---|"
  printf '%s\n' "${INGEST_ROWS[@]}"
  echo
}

# ---- scenarios ------------------------------------------------------------------------------------
# Every bench/scenarios/<name>.sh (or those BENCH_SCENARIOS names) runs after the tests above with
# OTTER_BIN, BENCH_TMP (a fresh scratch directory) and BENCH_DURATION, and prints one markdown
# section on stdout.
SCENARIO_OUT=""
run_scenarios() {
  local names=() name script dir rc
  SCENARIO_OUT="$TMP/scenarios.md"
  : >"$SCENARIO_OUT"
  if [[ "$SCENARIOS" == all ]]; then
    for script in "$ROOT"/bench/scenarios/*.sh; do
      [[ -e "$script" ]] && names+=("$(basename "$script" .sh)")
    done
  else
    read -r -a names <<<"$SCENARIOS"
  fi
  for name in "${names[@]}"; do
    script="$ROOT/bench/scenarios/$name.sh"
    if [[ ! -f "$script" ]]; then
      warn "no scenario $script"
      printf '### %s\n\nNot run: bench/scenarios/%s.sh does not exist.\n\n' "$name" "$name" >>"$SCENARIO_OUT"
      continue
    fi
    dir="$(mktemp -d "$TMP/scenario-$name.XXXXXX")"
    log "scenario $name"
    rc=0
    OTTER_BIN="$OTTER_BIN" BENCH_TMP="$dir" BENCH_DURATION="$DURATION" \
      bash "$script" >"$dir.out" || rc=$?
    cat "$dir.out" >>"$SCENARIO_OUT"
    if [[ $rc -ne 0 ]]; then
      warn "scenario $name failed (exit status $rc)"
      printf '\nScenario %s failed (exit status %s); its log went to stderr.\n' "$name" "$rc" >>"$SCENARIO_OUT"
    fi
    echo >>"$SCENARIO_OUT"
    rm -rf "$dir"
  done
}

report() {
  echo "# otter benchmark suite (bench/run.sh)"
  echo
  machine
  echo
  report_wrk
  [[ -n "$SLOW_RESULT" ]] && report_slow
  [[ ${#INGEST_ROWS[@]} -gt 0 ]] && report_ingest
  if [[ -s "$SCENARIO_OUT" ]]; then
    echo "## Scenarios"
    echo
    cat "$SCENARIO_OUT"
  fi
  return 0
}

# ---- main -----------------------------------------------------------------------------------------
for knob in DURATION WARMUP RUNS CONNS SLOW_CLIENTS SLOW_SECONDS INGEST_MIB; do
  [[ "${!knob}" =~ ^[0-9]+$ ]] || die "BENCH_$knob must be a whole number"
done
WRK_TIMEOUT=$((DURATION + 20))

ensure_tools
command -v cargo >/dev/null 2>&1 || [[ -n "$OTTER_BIN" || "$NGINX_ONLY" == 1 ]] || die "cargo not found"

raise_nofile
need_fds=$((2 * CONNS + 256))
[[ "$C1000" == 1 ]] && need_fds=$((2 * 1000 + 256))
((SLOW_CLIENTS + 256 > need_fds)) && need_fds=$((SLOW_CLIENTS * 2 + 256))
if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt $need_fds ]]; then
  warn "ulimit -n is $(ulimit -n) (hard $(ulimit -Hn)); about $need_fds are needed, expect socket errors"
fi

LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"
if awk -v l="${LOAD_AT_START%% *}" 'BEGIN { exit !(l > 0.5) }'; then
  warn "load average is $LOAD_AT_START: other work on this machine will skew the figures"
fi
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo none)"
if ! git diff --quiet HEAD -- 2>/dev/null; then COMMIT+=" (+ uncommitted changes)"; fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/otter-bench.XXXXXX")"
mkdir -p "$TMP/www" "$TMP/wrk"
head -c "$FILE_SIZE" /dev/urandom >"$TMP/www/bench.bin"
head -c "$BIG_SIZE" /dev/urandom >"$TMP/www/big.bin"

OTTER_V="n/a"
if [[ "$NGINX_ONLY" == 1 ]]; then
  SERVERS=(nginx)
  write_fake_check_json
else
  SERVERS=(otter nginx)
  build_otter
  OTTER_V="$("$OTTER_BIN" --version 2>/dev/null || true)"
  publish_on_otter
fi
start_nginx
NGINX_V="$("$(find_nginx)" -v 2>&1 | sed 's/^nginx version: //' || true)"
WRK_V="$( (wrk -v 2>&1 || true) | head -n 1 | awk '{ print $2 }')"

TESTS=(check)
[[ "$C1000" == 1 ]] && TESTS+=(check-c1000)
TESTS+=(download download-nocache download-64m)
for test in "${TESTS[@]}"; do
  case "$test" in
    check-c1000) bench_test "$test" 1000 ;;
    *) bench_test "$test" "$CONNS" ;;
  esac
done
stop_pid nginx "$NGINX_PID"
NGINX_PID=""

if [[ "$NGINX_ONLY" != 1 ]]; then
  # The remaining tests and the scenarios start their own servers.
  stop_otter main
  stop_otter nocache
  [[ "$SLOW_CLIENTS" -gt 0 ]] && bench_slow_downloads
  [[ "$INGEST_MIB" -gt 0 ]] && bench_ingest
  [[ "$SCENARIOS" != none ]] && run_scenarios
fi

mkdir -p "$(dirname "$OUT")"
echo
report | tee "$OUT"
echo
log "results written to $OUT"
