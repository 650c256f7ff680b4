# shellcheck shell=bash
# Shared setup of the namespaced page benchmarks (page_latency.sh, fleet_page.sh).
# Sourced, not run. Before sourcing, the script sets BENCH (its name, for
# messages), NETNS_PREFIX, and `cd`s to the repo root. It gets:
#   bench_need_root, bench_packages PKG..., bench_binary (sets $bin)
#   $P, $T: the probers' and the target's namespaces, created by bench_pair_network
#   pids / run_pids: PIDs this script started (long-lived / per run); only
#     these are ever killed, at stop_all and at exit; extra_netns: more
#     namespaces to delete at exit
#   log, now, inp, wait_http URL SECONDS, stop_all
root=$(pwd)

bench_need_root() {
  if [ "$(id -u)" -ne 0 ]; then echo "$BENCH: needs root (network namespaces, raw sockets, nftables)" >&2; exit 2; fi
}

bench_packages() {  # Debian packages, installed when missing
  local p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" >/dev/null
    fi
  done
}

bench_binary() {  # NIGHTSHIFT_BIN, or a Release build in build-bench
  if [ -z "${NIGHTSHIFT_BIN:-}" ]; then
    cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DNIGHTSHIFT_TESTS=OFF >/dev/null
    cmake --build build-bench --target nightshift -j2 >/dev/null
    NIGHTSHIFT_BIN=$root/build-bench/nightshift
  fi
  # shellcheck disable=SC2034  # used by the scripts that source this
  bin=$(readlink -f "$NIGHTSHIFT_BIN")
}

P=${NETNS_PREFIX}p$$  # probers' namespace
T=${NETNS_PREFIX}t$$  # target's namespace
pids=()
run_pids=()
extra_netns=()

bench_cleanup() {
  set +e
  local pid ns
  for pid in "${run_pids[@]}" "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${run_pids[@]}" "${pids[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null
  done
  for ns in "${extra_netns[@]}"; do ip netns del "$ns" 2>/dev/null; done
  ip netns del "$P" 2>/dev/null
  ip netns del "$T" 2>/dev/null
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
now() { date +%s.%N; }
# In the probers' namespace. Daemons are started with `ip netns exec ... &`
# directly (never through this function), so that $! is the daemon's own PID.
inp() { ip netns exec "$P" "$@"; }

# Probers on 198.51.100.1, the target on 198.51.100.2, a veth pair (vp in P,
# vt in T) between them, no route anywhere else.
bench_pair_network() {
  ip netns add "$P"
  ip netns add "$T"
  ip -n "$P" link set lo up
  ip -n "$T" link set lo up
  ip -n "$P" link add vp type veth peer name vt netns "$T"
  ip -n "$P" addr add 198.51.100.1/24 dev vp
  ip -n "$T" addr add 198.51.100.2/24 dev vt
  ip -n "$P" link set vp up
  ip -n "$T" link set vt up
  for _ in $(seq 50); do inp ping -c1 -W1 198.51.100.2 >/dev/null 2>&1 && break; sleep 0.1; done
}

wait_http() {  # URL SECONDS
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    inp curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "$BENCH: $1 did not answer within $2 s" >&2
  return 1
}

stop_all() {  # ends this run's daemons (run_pids), bounded
  local pid
  for pid in "${run_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${run_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  run_pids=()
}
