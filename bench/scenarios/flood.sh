#!/usr/bin/env bash
# Flood: does a client that --rate-limit-device refuses (429) slow down well-behaved devices?
# Well-behaved devices (random ids out of FLOOD_DEVICES, 100,000) check in, paced at FLOOD_RATE
# checks/s (10,000, 256 connections) and then at full speed (64 connections), first alone, then while one device id floods the same
# endpoint from 64 connections as fast as it can (each of its 429s held back --rate-limit-hold).
# Follows the bench/scenarios interface
# (OTTER_BIN, BENCH_TMP, BENCH_DURATION; one markdown section on stdout, progress on stderr):
#
#   OTTER_BIN=target/release/otter bash bench/scenarios/flood.sh
#
# Why one device id: on loopback every client has the same address, and wrk cannot choose its
# source address (127.0.0.x), so the flood is held by the per-device limit (default 1/s:30), which
# stays on as in production; the per-address limit takes the same path through the same limiter.
set -euo pipefail
SCENARIO=flood
# shellcheck source=../lib/device-load.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/device-load.sh"

DEVICES="${FLOOD_DEVICES:-100000}"
RATE="${FLOOD_RATE:-10000}"
# Paced, as in fleet.sh: many connections, so each one's wait is long beside its response time.
PACED_CONNS=256
FULL_CONNS=64
FLOOD_CONNS=64

start_otter sqlite
write_lua "$BENCH_TMP/flood.lua" abuser- 1 0 "$FLOOD_CONNS"

ROWS=()
measure() { # load-label rate connections
  local load="$1" rate="$2" conns="$3" alone="$BENCH_TMP/alone-$2.txt" with="$BENCH_TMP/with-$2.txt"
  local flood="$BENCH_TMP/flood-$2.txt"
  write_lua "$BENCH_TMP/good.lua" dev- "$DEVICES" "$rate" "$conns"
  log "well-behaved devices $load, alone"
  start_wrk "$alone" 1 "$conns" -s "$BENCH_TMP/good.lua" "$BASE/"
  wait "${WRK_PIDS[-1]}" || die "wrk failed (see $alone)"
  log "well-behaved devices $load, with the flood"
  start_wrk "$with" 1 "$conns" -s "$BENCH_TMP/good.lua" "$BASE/"
  start_wrk "$flood" 1 "$FLOOD_CONNS" -s "$BENCH_TMP/flood.lua" "$BASE/"
  wait "${WRK_PIDS[-2]}" || die "wrk failed (see $with)"
  wait "${WRK_PIDS[-1]}" || die "wrk failed (see $flood)"
  local a_req a_err a_p99 a_rps a_st w_req w_err w_p99 w_rps w_st f_req f_err f_p99 f_rps f_st
  read -r a_req a_err a_p99 a_rps a_st < <(wrk_result "$alone")
  read -r w_req w_err w_p99 w_rps w_st < <(wrk_result "$with")
  read -r f_req f_err f_p99 f_rps f_st < <(wrk_result "$flood")
  ROWS+=("| $load, $conns connections | $a_rps | $a_p99 | $w_rps | $w_p99 | $(awk -v w="$w_rps" -v a="$a_rps" \
    'BEGIN { printf "%.2f", a ? w / a : 0 }') | $f_rps | $f_st | $((a_err + a_st + w_err + w_st + f_err)) |")
}

measure "paced at $RATE/s" "$RATE" "$PACED_CONNS"
measure "full speed" 0 "$FULL_CONNS"

cat <<END
### Flood of a rate-limited client

Well-behaved devices (random ids out of $DEVICES) checking in for ${DURATION} s alone, then while one device id floods the check endpoint from $FLOOD_CONNS connections and is refused with 429 by --rate-limit-device (default 1/s:30), each 429 held back --rate-limit-hold (default 1 s); otter on SQLite.

| well-behaved load | alone checks/s | alone p99 ms | with flood checks/s | with flood p99 ms | with / alone | flood req/s | flood 429s | errors |
|---|---|---|---|---|---|---|---|---|
END
printf '%s\n' "${ROWS[@]}"
