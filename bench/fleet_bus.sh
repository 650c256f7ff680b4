#!/usr/bin/env bash
# Fleet bench (issue 18): bus cost per agent in steady state and the time
# from a failure to the fleet's decision (quorum by on-demand confirmation,
# then one owner), with AGENTS fleet nodes in one process on one real
# nats-server (Debian nats-server 2.9) on 127.0.0.1:${NATS_PORT:-19450}.
#
#   bench/fleet_bus.sh                      # 3 agents x 10 000 targets, 60 s steady, 10 outages; then 50 agents
#   AGENTS=3 TARGETS=10000 SECONDS_STEADY=60 OUTAGES=10 bench/fleet_bus.sh
#
# The Prometheus side of the comparison is the shipped rule
# TargetDownFromSeveralVantagePoints (for: 1m at a 15 s scrape and
# evaluation): at least 60 s + one scrape + one evaluation after the outage,
# 75-90 s as measured by bench/page_latency.sh's peer-typical setup.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
port="${NATS_PORT:-19450}"
work="$(mktemp -d /tmp/nightshift-fleet-bench-XXXXXX)"
nats_pid=""
cleanup() {
  if [ -n "$nats_pid" ]; then kill "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

g++ -std=c++20 -O2 -I"$root" -I"$root/include" bench/fleet_bus.cpp fleet/*.cpp core/log.cpp core/reactor.cpp \
  -o "$work/fleet_bus" $(pkg-config --cflags --libs libnats) -lpthread

nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/js" 2>"$work/nats.log" &
nats_pid=$!
for _ in $(seq 1 50); do grep -q "Server is ready" "$work/nats.log" && break; sleep 0.1; done
grep -q "Server is ready" "$work/nats.log" || { cat "$work/nats.log"; exit 1; }

echo "# $(nats-server --version), $(nproc) cores, $(date -u +%FT%TZ)"
/usr/bin/time -v "$work/fleet_bus" "nats://127.0.0.1:$port" "${AGENTS:-3}" "${TARGETS:-10000}" \
  "${SECONDS_STEADY:-60}" "${OUTAGES:-10}" 2>"$work/time.log"
grep -E "Maximum resident|Elapsed" "$work/time.log"
# Many agents sharing one target set: still one incident and one owner per outage.
"$work/fleet_bus" "nats://127.0.0.1:$port" "${MANY_AGENTS:-50}" 100 10 5
