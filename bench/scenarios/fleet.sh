#!/usr/bin/env bash
# Fleet simulator: FLEET_DEVICES (100,000) device ids poll otter's check endpoint, each check
# recording a sighting, on SQLite and on PostgreSQL, once paced at FLEET_RATE polls/s (10,000)
# and once at full speed. Reports polls/s, p99, the sightings dropped (otter_sightings_dropped_total)
# and the devices stored. Follows the bench/scenarios interface (OTTER_BIN, BENCH_TMP,
# BENCH_DURATION; one markdown section on stdout, progress on stderr):
#
#   OTTER_BIN=target/release/otter bash bench/scenarios/fleet.sh
set -euo pipefail
SCENARIO=fleet
# shellcheck source=../lib/device-load.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/device-load.sh"

DEVICES="${FLEET_DEVICES:-100000}"
RATE="${FLEET_RATE:-10000}"
CONNS="${FLEET_CONNS:-64}"
# Paced, each connection waits about conns/rate seconds between checks, and its response time on
# top: with more connections that wait is long beside it, so the rate comes out closer to RATE.
PACED_CONNS="${FLEET_PACED_CONNS:-256}"
DATABASES="${FLEET_DATABASES:-sqlite postgres}" # either or both

ROWS=()
run_case() { # database load-label rate connections
  local db="$1" load="$2" rate="$3" conns="$4" out="$BENCH_TMP/wrk-$1-$3.txt"
  start_otter "$db"
  write_lua "$BENCH_TMP/fleet.lua" dev- "$DEVICES" "$rate" "$conns"
  log "$db, $load: ${DURATION} s of wrk at $conns connections over $DEVICES device ids"
  start_wrk "$out" 2 "$conns" -s "$BENCH_TMP/fleet.lua" "$BASE/"
  wait "${WRK_PIDS[-1]}" || die "wrk failed (see $out)"
  local requests errors p99 rps status dropped over stored
  read -r requests errors p99 rps status < <(wrk_result "$out")
  wait_for_writer
  dropped="$(metric otter_sightings_dropped_total)"
  over="$(metric otter_devices_over_limit_total)"
  stored="$(devices_stored)"
  ROWS+=("| $db | $load, $conns connections | $rps | $p99 | $requests | $dropped ($(awk -v d="$dropped" -v r="$requests" \
    'BEGIN { printf "%.2f", r ? 100 * d / r : 0 }') %) | $over | $stored | $((errors + status)) |")
  stop_otter
}

for db in $DATABASES; do
  run_case "$db" "paced at $RATE/s" "$RATE" "$PACED_CONNS"
  run_case "$db" "full speed" 0 "$CONNS"
done

cat <<END
### Fleet simulator: $DEVICES devices polling with check-in writes

Checks naming random device ids out of $DEVICES (each records a sighting), ${DURATION} s of wrk, paced at about $RATE polls/s and at full speed; drops and devices counted once the writer caught up.

| database | load | polls/s | p99 ms | polls | sightings dropped | over device cap | devices stored | errors |
|---|---|---|---|---|---|---|---|---|
END
printf '%s\n' "${ROWS[@]}"
