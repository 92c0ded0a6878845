#!/usr/bin/env bash
# Check throughput with an active percentage rollout against without one, in the same otter:
# product `fleet` offers 1.1.0 to everyone (no rollout); product `staged` has 1.1.0 and a running
# rollout of 1.2.0 to ROLLOUT_PERCENT (10) % of its devices, so every check there passes the
# rollout gate (members are offered 1.2.0, the others 1.1.0: both answers are offers). wrk checks
# random ids out of ROLLOUT_DEVICES (10,000), first until no more of the rollout's members come
# in (not measured), then ROLLOUT_RUNS (2) runs per product, alternating. Target: with / without ≥ 0.9.
# Follows the bench/scenarios interface (OTTER_BIN, BENCH_TMP, BENCH_DURATION; one markdown
# section on stdout, progress on stderr):
#
#   OTTER_BIN=target/release/otter bash bench/scenarios/rollout.sh
set -euo pipefail
SCENARIO=rollout
# shellcheck source=../lib/device-load.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/device-load.sh"

DEVICES="${ROLLOUT_DEVICES:-10000}"
PERCENT="${ROLLOUT_PERCENT:-10}"
RUNS="${ROLLOUT_RUNS:-2}"
CONNS=64

# The device rate limit would refuse ids drawn twice within a second; it is not what is measured.
start_otter sqlite --rate-limit-device off
publish() { # product version
  local sha
  head -c 4096 /dev/urandom >"$BENCH_TMP/fw-$1-$2.bin"
  sha="$(api -X PUT -H 'Content-Type: application/octet-stream' -H 'Expect:' \
    --data-binary "@$BENCH_TMP/fw-$1-$2.bin" "$BASE/api/v1/artifacts?filename=fw.bin" |
    sed -n 's/.*"sha256"[[:space:]]*:[[:space:]]*"\([0-9a-f]\{64\}\)".*/\1/p' | head -n 1)"
  api -X POST -H 'Content-Type: application/json' \
    -d "{\"version\":\"$2\",\"artifact\":\"$sha\"}" "$BASE/api/v1/products/$1/releases" >/dev/null
}
api -X POST -H 'Content-Type: application/json' -d '{"name":"staged","scheme":"semver"}' \
  "$BASE/api/v1/products" >/dev/null
publish staged 1.1.0
api -X POST -H 'Content-Type: application/json' \
  -d "{\"version\":\"1.2.0\",\"stages\":[{\"percent\":$PERCENT}]}" \
  "$BASE/api/v1/products/staged/rollouts" >/dev/null
publish staged 1.2.0

write_lua "$BENCH_TMP/fleet.lua" dev- "$DEVICES" 0 "$CONNS"
sed 's#/products/fleet/#/products/staged/#' "$BENCH_TMP/fleet.lua" >"$BENCH_TMP/staged.lua"
run() { # product label -> "req/s p99"
  local out="$BENCH_TMP/wrk-$1-$2.txt" requests errors p99 rps status
  start_wrk "$out" 2 "$CONNS" -s "$BENCH_TMP/$1.lua" "$BASE/"
  wait "${WRK_PIDS[-1]}" || die "wrk failed (see $out)"
  read -r requests errors p99 rps status < <(wrk_result "$out")
  [[ $((errors + status)) -eq 0 ]] || die "$((errors + status)) errors (see $out)"
  echo "$rps $p99"
}
let_in() { api "$BASE/api/v1/products/staged/rollouts/1" | sed -n 's/.*"offered":\([0-9]*\).*/\1/p'; }
# Warm-up runs (not measured) until no more members come in: what is measured is the steady
# state, where every check is answered from memory.
members=-1
for i in $(seq 1 5); do
  log "letting the rollout's members in, round $i (${DURATION} s, not measured)"
  start_wrk "$BENCH_TMP/wrk-warmup-$i.txt" 2 "$CONNS" -s "$BENCH_TMP/staged.lua" "$BASE/"
  wait "${WRK_PIDS[-1]}" || die "wrk failed (see $BENCH_TMP/wrk-warmup-$i.txt)"
  now="$(let_in)"
  [[ "$now" == "$members" ]] && break
  members="$now"
done
ROWS=()
SUM_PLAIN=0
SUM_STAGED=0
for i in $(seq 1 "$RUNS"); do
  for product in fleet staged; do
    log "run $i, $product: ${DURATION} s of wrk at $CONNS connections over $DEVICES ids"
    read -r rps p99 < <(run "$product" "$i")
    ROWS+=("| $i | $([[ $product == fleet ]] && echo "no rollout" || echo "$PERCENT % rollout") | $rps | $p99 |")
    if [[ $product == fleet ]]; then SUM_PLAIN=$((SUM_PLAIN + rps)); else SUM_STAGED=$((SUM_STAGED + rps)); fi
  done
done

cat <<END
### Checks with an active percentage rollout

Native checks of random ids out of $DEVICES, ${DURATION} s of wrk at $CONNS connections per run, the same otter answering a product without a rollout and one with a running $PERCENT % rollout ($members devices let in during warm-up runs not shown). Ratio of the means, with / without: $(awk -v a="$SUM_STAGED" -v b="$SUM_PLAIN" 'BEGIN { printf "%.2f", b ? a / b : 0 }') (target ≥ 0.9).

| run | product | checks/s | p99 ms |
|---|---|---|---|
END
printf '%s\n' "${ROWS[@]}"
