# Shared by the device-load scenarios (bench/scenarios/fleet.sh, flood.sh); sourced, not run.
# Starts otter (on SQLite, or on a throwaway PostgreSQL cluster) with one product `fleet` whose
# release 1.1.0 is offered to devices on 1.0.0, drives it with wrk, reads /metrics, and stops
# everything on exit. Expects OTTER_BIN; uses BENCH_TMP (made and removed here if unset) and
# SCENARIO (the name prefixed to progress lines on stderr).

OTTER_BIN="${OTTER_BIN:?set OTTER_BIN to a release otter binary}"
DURATION="${BENCH_DURATION:-10}"

log() { printf '%s: %s\n' "$SCENARIO" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$SCENARIO" "$*" >&2
  exit 1
}

OWN_TMP=0
if [[ -z "${BENCH_TMP:-}" ]]; then
  BENCH_TMP="$(mktemp -d)"
  OWN_TMP=1
fi
OTTER_PID=""
WRK_PIDS=()
PG_DATA=""
PG_DIRS=()
RUN_AS=()

stop_pid() { # pid
  local pid="$1"
  { [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; } || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_postgres() {
  [[ -n "$PG_DATA" ]] || return 0
  "${RUN_AS[@]}" /usr/local/bin/pg_ctl -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
  PG_DATA=""
}

stop_otter() {
  stop_pid "$OTTER_PID"
  OTTER_PID=""
  stop_postgres
}

cleanup() {
  local rc=$? pid dir
  trap - EXIT INT TERM
  for pid in "${WRK_PIDS[@]}"; do stop_pid "$pid"; done
  stop_otter
  for dir in "${PG_DIRS[@]}"; do rm -rf "$dir"; done
  if [[ $OWN_TMP -eq 1 ]]; then rm -rf "$BENCH_TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ulimit -n 65536 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true

# shellcheck source=free-port.sh
source "$(dirname "${BASH_SOURCE[0]}")/free-port.sh"

# A throwaway cluster on loopback, as crates/otter-testkit/src/postgres.rs starts one; prints
# its URL. Durability is off (fsync, synchronous commit), as in the tests: the figures measure
# otter and the database's CPU, not a shared disk.
# The cluster lives in a directory of its own under /tmp, since as root it runs as the postgres
# user, who cannot enter BENCH_TMP (0700).
start_postgres() {
  local dir port
  dir="$(mktemp -d /tmp/otter-bench-pg.XXXXXX)"
  PG_DIRS+=("$dir")
  if [[ "$(id -u)" -eq 0 ]]; then
    RUN_AS=(runuser -u postgres --)
    chown postgres "$dir"
  fi
  "${RUN_AS[@]}" /usr/local/bin/initdb -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync \
    --locale=C >"$dir/initdb.log" 2>&1 || die "initdb failed (see $dir/initdb.log)"
  port="$(free_port)"
  "${RUN_AS[@]}" /usr/local/bin/pg_ctl -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || die "PostgreSQL did not start (see $dir/log)"
  PG_DATA="$dir/data"
  echo "postgres://postgres@127.0.0.1:$port/postgres"
}

BASE=""
TOKEN="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

api() { curl -sS --fail-with-body -H "Authorization: Bearer $TOKEN" "$@"; }

# Starts otter on `sqlite` (its data directory) or `postgres` with the product `fleet`; extra
# arguments go to `otter serve`.
start_otter() { # database [serve args...]
  local db="$1" url="" port data="$BENCH_TMP/otter-data-$RANDOM" sha
  shift
  if [[ "$db" == postgres ]]; then
    url="$(start_postgres)"
    OTTER_DATABASE_URL="$url" "$OTTER_BIN" migrate >"$BENCH_TMP/migrate.log" 2>&1 ||
      die "otter migrate failed (see $BENCH_TMP/migrate.log)"
  fi
  port="$(free_port)"
  BASE="http://127.0.0.1:$port"
  local env_args=(-u OTTER_CONFIG -u OTTER_DATABASE_URL -u OTTER_DATABASE_URL_FILE)
  [[ -n "$url" ]] && env_args+=(OTTER_DATABASE_URL="$url")
  env "${env_args[@]}" OTTER_ADMIN_TOKEN="$TOKEN" RUST_LOG=warn \
    "$OTTER_BIN" serve --listen "127.0.0.1:$port" --data "$data" "$@" \
    >"$BENCH_TMP/otter.log" 2>&1 &
  OTTER_PID=$!
  for _ in $(seq 1 120); do
    kill -0 "$OTTER_PID" 2>/dev/null || die "otter exited: $(tail -n 5 "$BENCH_TMP/otter.log")"
    curl -sf -o /dev/null "$BASE/healthz" && break
    sleep 0.25
  done
  api -X POST -H 'Content-Type: application/json' \
    -d '{"name":"fleet","scheme":"semver"}' "$BASE/api/v1/products" >/dev/null
  head -c 4096 /dev/urandom >"$BENCH_TMP/fw.bin"
  sha="$(api -X PUT -H 'Content-Type: application/octet-stream' -H 'Expect:' \
    --data-binary "@$BENCH_TMP/fw.bin" "$BASE/api/v1/artifacts?filename=fw.bin" |
    sed -n 's/.*"sha256"[[:space:]]*:[[:space:]]*"\([0-9a-f]\{64\}\)".*/\1/p' | head -n 1)"
  [[ -n "$sha" ]] || die "uploading the artifact failed"
  api -X POST -H 'Content-Type: application/json' \
    -d "{\"version\":\"1.1.0\",\"artifact\":\"$sha\"}" \
    "$BASE/api/v1/products/fleet/releases" >/dev/null
}

metric() { # name: its value in /metrics (0 when absent)
  curl -sf "$BASE/metrics" |
    awk -v m="$1" '$1 == m { v = $2 } END { print (v == "" ? 0 : v) }'
}

devices_stored() { # pages through the product's device list
  local cursor="" n=0 page
  while :; do
    page="$(api "$BASE/api/v1/products/fleet/devices?limit=500${cursor:+&cursor=$cursor}")"
    n=$((n + $(grep -o '"id":' <<<"$page" | wc -l)))
    cursor="$(sed -n 's/.*"nextCursor":"\([^"]*\)".*/\1/p' <<<"$page")"
    [[ -n "$cursor" ]] || break
  done
  echo "$n"
}

# Waits until no device is waiting to be written (the writer caught up), for up to 120 s.
wait_for_writer() {
  for _ in $(seq 1 480); do
    [[ "$(metric otter_sighting_queue_depth)" == 0 ]] && return 0
    sleep 0.25
  done
  log "the sighting writer did not catch up within 120 s"
}

# A wrk script checking in random device ids `PREFIX1`..`PREFIXdevices`, paced so that `conns`
# connections together make about `rate` checks a second (0: as fast as they can). Its done()
# prints `RESULT requests errors p99_ms duration_us non_2xx` for wrk_result.
write_lua() { # file prefix devices rate conns
  cat >"$1" <<EOF
local prefix, devices, rate, conns = "$2", $3, $4, $5
-- Each connection waits about conns/rate seconds between checks (wrk's delay(), in ms),
-- jittered so the connections do not march in step.
local interval = rate > 0 and (conns * 1000 / rate) or 0
-- One Lua state per wrk thread: number them, so each draws its own ids.
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
init = function()
  math.randomseed(os.time() * 100 + thread_id)
end
request = function()
  local id = math.random(1, devices)
  return wrk.format("GET", "/api/v1/products/fleet/check?current=1.0.0&device=" .. prefix .. id)
end
if interval > 0 then
  delay = function()
    return math.random(0, math.floor(2 * interval + 0.5))
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %.2f %d %d\n", summary.requests,
    e.connect + e.read + e.write + e.timeout, latency:percentile(99) / 1000,
    summary.duration, e.status))
end
EOF
}

# Starts wrk in the background (its pid added to WRK_PIDS; collect it with `wait`).
start_wrk() { # out threads conns [wrk args...] url
  local out="$1" threads="$2" conns="$3"
  shift 3
  timeout $((DURATION + 30)) wrk "-t$threads" "-c$conns" "-d${DURATION}s" --timeout 5s "$@" \
    >"$out" 2>&1 &
  WRK_PIDS+=($!)
}

# `requests errors p99_ms req_per_s non_2xx` of a wrk run that used write_lua's script.
wrk_result() { # out
  local requests errors p99 micros status
  read -r _ requests errors p99 micros status < <(grep '^RESULT ' "$1") ||
    die "no result from wrk (see $1)"
  echo "$requests $errors $p99 $(awk -v r="$requests" -v us="$micros" 'BEGIN { printf "%.0f", r / (us / 1e6) }') $status"
}
