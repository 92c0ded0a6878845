# shellcheck shell=bash
# free_port: prints a loopback port nothing listens on, for a server the bench starts. It is
# picked below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by
# default): a port in that range may be the local end of an outgoing connection (wrk's, or
# otter's to PostgreSQL) by the time the server binds it, and the server then fails with
# "Address already in use". The sourcing script defines `die`.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "no free port on 127.0.0.1"
}
