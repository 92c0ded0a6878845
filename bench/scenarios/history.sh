#!/usr/bin/env bash
# A long release history in one product: check throughput with 1 release and with
# BENCH_HISTORY (10,000) releases, publish latency while publishing them one after another
# through the admin API, and otter's RSS. See bench/README.md (scenario interface) and
# docs/benchmarks.md (results).
#
# Standalone: OTTER_BIN=target/release/otter bash bench/scenarios/history.sh
set -euo pipefail

: "${OTTER_BIN:?OTTER_BIN must name a release otter binary}"
DURATION="${BENCH_DURATION:-10}"
HISTORY="${BENCH_HISTORY:-10000}"
CONNS=64

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

OWN_TMP=0
if [[ -z "${BENCH_TMP:-}" ]]; then
  BENCH_TMP="$(mktemp -d)"
  OWN_TMP=1
fi
OTTER_PID=""
cleanup() {
  if [[ -n "$OTTER_PID" ]] && kill -0 "$OTTER_PID" 2>/dev/null; then
    kill -TERM "$OTTER_PID" 2>/dev/null || true
    wait "$OTTER_PID" 2>/dev/null || true
  fi
  if [[ $OWN_TMP -eq 1 ]]; then rm -rf "$BENCH_TMP"; fi
}
trap cleanup EXIT INT TERM

# shellcheck source=../lib/free-port.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/free-port.sh"

rss_mib() { # resident set of otter now, MiB with one decimal
  awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$OTTER_PID/status"
}

# ---- otter ----------------------------------------------------------------------------------------
PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
TOKEN="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
mkdir -p "$BENCH_TMP/data" "$BENCH_TMP/fw"
env_args=()
for var in $(compgen -e); do
  if [[ "$var" == OTTER_* ]]; then env_args+=(-u "$var"); fi
done
log "starting otter on $BASE (log: $BENCH_TMP/otter.log)"
env "${env_args[@]}" OTTER_ADMIN_TOKEN="$TOKEN" RUST_LOG="${RUST_LOG:-warn}" \
  "$OTTER_BIN" serve --listen "127.0.0.1:$PORT" --data "$BENCH_TMP/data" \
  >"$BENCH_TMP/otter.log" 2>&1 &
OTTER_PID=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null --max-time 1 "$BASE/healthz" && break
  kill -0 "$OTTER_PID" 2>/dev/null || die "otter exited: $(tail -n 20 "$BENCH_TMP/otter.log")"
  sleep 0.1
done
RSS_START="$(rss_mib)"

api() {
  curl -sS --fail-with-body -H "Authorization: Bearer $TOKEN" "$@"
}
api -X POST -H 'Content-Type: application/json' -d '{"name":"hist","scheme":"semver"}' \
  "$BASE/api/v1/products" >/dev/null

# ---- artifacts: one tiny image per release, uploaded over one keep-alive connection ---------------
log "writing and uploading $HISTORY tiny artifacts"
: >"$BENCH_TMP/upload.cfg"
for i in $(seq 1 "$HISTORY"); do
  printf 'firmware 2.%s.0\n' "$i" >"$BENCH_TMP/fw/$i.bin"
  if [[ $i -gt 1 ]]; then echo next >>"$BENCH_TMP/upload.cfg"; fi
  printf 'url = "%s/api/v1/artifacts?filename=fw-%s.bin"\nrequest = "PUT"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/octet-stream"\ndata-binary = "@%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
    "$BASE" "$i" "$TOKEN" "$BENCH_TMP/fw/$i.bin" >>"$BENCH_TMP/upload.cfg"
done
curl -sS -K "$BENCH_TMP/upload.cfg" >"$BENCH_TMP/upload.codes"
bad="$(grep -cv '^20[01]$' "$BENCH_TMP/upload.codes" || true)"
[[ "$bad" == 0 ]] || die "$bad artifact uploads failed"
(cd "$BENCH_TMP/fw" && sha256sum $(seq -f '%g.bin' 1 "$HISTORY")) | awk '{ print $1 }' >"$BENCH_TMP/shas"

# ---- publishing: one release after another, timed by curl ------------------------------------------
publish_cfg() { # first last: a curl config publishing releases first..last
  awk -v first="$1" -v last="$2" -v base="$BASE" -v token="$TOKEN" 'NR >= first && NR <= last {
    if (NR > first) print "next"
    printf "url = \"%s/api/v1/products/hist/releases\"\nrequest = \"POST\"\n", base
    printf "header = \"Authorization: Bearer %s\"\nheader = \"Content-Type: application/json\"\n", token
    printf "data = \"{\\\"version\\\":\\\"2.%d.0\\\",\\\"artifact\\\":\\\"%s\\\"}\"\n", NR, $1
    printf "output = \"/dev/null\"\nwrite-out = \"%%{http_code} %%{time_total}\\n\"\n"
  }' "$BENCH_TMP/shas"
}

wrk_check() { # label: wrk on the check of a device two major versions behind
  local out="$BENCH_TMP/wrk-$1.txt" url="$BASE/api/v1/products/hist/check?current=1.0.0"
  curl -sS --fail "$url" | grep -q '"hasUpdate":true' || die "the check offers nothing"
  wrk -t2 -c"$CONNS" -d2s "$url" >/dev/null 2>&1 || true # warm-up
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency "$url" >"$out" 2>&1 ||
    die "wrk failed: $(cat "$out")"
  kill -0 "$OTTER_PID" 2>/dev/null || die "otter exited during wrk"
}
req_s() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$1"; }
p99() { awk '$1 == "99%" { print $2 }' "$1"; }

log "publishing release 1"
publish_cfg 1 1 >"$BENCH_TMP/publish-1.cfg"
curl -sS -K "$BENCH_TMP/publish-1.cfg" >"$BENCH_TMP/publish.times"
RSS_ONE="$(rss_mib)"
log "check with 1 release (wrk -c$CONNS, ${DURATION}s)"
wrk_check one
RSS_ONE_AFTER="$(rss_mib)"

log "publishing releases 2..$HISTORY one after another"
publish_cfg 2 "$HISTORY" >"$BENCH_TMP/publish-rest.cfg"
curl -sS -K "$BENCH_TMP/publish-rest.cfg" >>"$BENCH_TMP/publish.times"
bad="$(awk '$1 != 201' "$BENCH_TMP/publish.times" | wc -l)"
[[ "$bad" == 0 ]] || die "$bad publishes failed: $(awk '$1 != 201' "$BENCH_TMP/publish.times" | head -n 3)"
RSS_MANY="$(rss_mib)"
log "check with $HISTORY releases (wrk -c$CONNS, ${DURATION}s)"
wrk_check many
RSS_MANY_AFTER="$(rss_mib)"

# Publish latency percentiles (curl's time_total, ms), overall and over the last thousand.
pct() { # file pct
  sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.1f", v[i] * 1000 }'
}
awk '{ print $2 }' "$BENCH_TMP/publish.times" >"$BENCH_TMP/all.t"
tail -n 1000 "$BENCH_TMP/all.t" >"$BENCH_TMP/last.t"

one="$(req_s "$BENCH_TMP/wrk-one.txt")"
many="$(req_s "$BENCH_TMP/wrk-many.txt")"
ratio="$(awk -v a="$many" -v b="$one" 'BEGIN { printf "%.2f", a / b }')"
per_release="$(awk -v a="$RSS_MANY" -v b="$RSS_ONE" -v n="$HISTORY" 'BEGIN { printf "%.1f", (a - b) * 1024 / (n - 1) }')"

echo "### Long release history (bench/scenarios/history.sh)"
echo
echo "One product, $HISTORY releases published one after another through the admin API (tiny artifacts), on SQLite: check throughput of a device two major versions behind (wrk -t2 -c$CONNS -d${DURATION}s) with 1 release and with $HISTORY, publish latency (curl time_total), and otter's RSS."
echo
echo "| measure | 1 release | $HISTORY releases |"
echo "|---|---|---|"
echo "| check req/s | $one | $many ($ratio ×) |"
echo "| check p99 | $(p99 "$BENCH_TMP/wrk-one.txt") | $(p99 "$BENCH_TMP/wrk-many.txt") |"
echo "| publish p50 / p99 (all $HISTORY) | | $(pct "$BENCH_TMP/all.t" 50) ms / $(pct "$BENCH_TMP/all.t" 99) ms |"
echo "| publish p50 / p99 (last 1,000) | | $(pct "$BENCH_TMP/last.t" 50) ms / $(pct "$BENCH_TMP/last.t" 99) ms |"
echo "| otter RSS (MiB; at start: $RSS_START) | $RSS_ONE (after wrk: $RSS_ONE_AFTER) | $RSS_MANY (after wrk: $RSS_MANY_AFTER) |"
echo "| RSS growth per release | | $per_release KiB |"
