#!/usr/bin/env bash
# Many agents in one fleet on one machine (issue 18: "50 agents on one machine
# sharing a target set still give 1 page per outage"), with real processes:
# AGENTS `nightshift run` agents at the defaults (interval 10 s, timeout 3 s,
# built-in rules), every one watching the same TARGETS namespaced hosts (an
# ICMP probe each), all in one fleet on one real nats-server (JetStream), each
# paging through its webhook sink to one receiver (bench/page_receiver.py).
# One host at a time is cut; each outage must give one page (one `declared`
# from one agent, under one fleet incident id), and its end one resolve.
#
#   sudo NIGHTSHIFT_BIN=build/nightshift bench/fleet_many.sh             # 50 agents, 4 hosts, 3 outages, ~5 min
#   AGENTS=50 TARGETS=4 RUNS=3 WARMUP=40 NETNS_PREFIX=fm PORT_BASE=45400 ... # overrides
#
# Without NIGHTSHIFT_BIN it builds build-bench (Release) first.
#
# Network: two namespaces this script creates (probers on 198.51.100.1, hosts
# on 198.51.100.2.., one veth pair between them, no route anywhere else);
# every daemon runs in the probers' namespace on 127.0.0.1, ports
# PORT_BASE..+99 (AGENTS at most 80). An outage is the host's address removed
# from the hosts' namespace (echoes to it go unanswered); it comes back with
# `ip addr add`. The agents run through every outage (state carries over, as in
# a deployment). Every wait is bounded; only PIDs this script started are
# killed; the namespaces are deleted at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

AGENTS=${AGENTS:-50}
TARGETS=${TARGETS:-4}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-30}        # seconds healthy before each cut (plus 0-10 s at random)
PAGE_WAIT=${PAGE_WAIT:-60}  # give up on an outage's page after this many seconds
SETTLE=${SETTLE:-20}        # after the first page, keep counting this long
NETNS_PREFIX=${NETNS_PREFIX:-fm}
PORT_BASE=${PORT_BASE:-45400}
NATS_PORT=$PORT_BASE
NATS_MON_PORT=$((PORT_BASE + 1))
RECV_PORT=$((PORT_BASE + 2))
AGENT_PORT=$((PORT_BASE + 10))

if [ "$AGENTS" -lt 2 ] || [ "$AGENTS" -gt 80 ]; then echo "fleet_many: AGENTS must be 2..80 (ports)" >&2; exit 2; fi
if [ "$TARGETS" -lt 1 ] || [ "$TARGETS" -gt 50 ]; then echo "fleet_many: TARGETS must be 1..50" >&2; exit 2; fi
# The setup shared with the other namespaced benches: root check, packages,
# the binary, $P/$T, pids/run_pids and their cleanup at exit, log/now/inp.
BENCH=fleet_many
. bench/lib.sh
bench_need_root
bench_packages nats-server iproute2 python3 curl
bench_binary

out=${OUT_DIR:-$(mktemp -d /tmp/fleet-many.XXXXXX)}
mkdir -p "$out"
host_addr() { echo "198.51.100.$(($1 + 1))"; }  # host 1.. -> .2..

# --- network ---------------------------------------------------------------
ip netns add "$P"
ip netns add "$T"
ip -n "$P" link set lo up
ip -n "$T" link set lo up
ip -n "$P" link add vp type veth peer name vt netns "$T"
ip -n "$P" addr add 198.51.100.1/24 dev vp
# One /32 per host: removing one address leaves the others (a /24's secondaries
# go with its primary).
for h in $(seq "$TARGETS"); do ip -n "$T" addr add "$(host_addr "$h")/32" dev vt; done
ip -n "$P" link set vp up
ip -n "$T" link set vt up
ip -n "$T" route add 198.51.100.1/32 dev vt
for h in $(seq "$TARGETS"); do
  for _ in $(seq 50); do inp ping -c1 -W1 "$(host_addr "$h")" >/dev/null 2>&1 && break; sleep 0.1; done
done

# --- receiver, nats-server, agents --------------------------------------------
events="$out/events.log"
: >"$events"
# Directly, not through inp(): $! must be the receiver's own PID (ip execs it).
ip netns exec "$P" python3 "$root/bench/page_receiver.py" "$RECV_PORT" "$events" >"$out/receiver.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$out/receiver.out" && break; sleep 0.1; done
grep -q listening "$out/receiver.out" || { echo "fleet_many: the receiver did not start" >&2; exit 1; }

mkdir -p "$out/nats"
ip netns exec "$P" nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON_PORT" -sd "$out/nats" \
  >"$out/nats/nats.log" 2>&1 &
pids+=($!)
nats_pid=$!
for _ in $(seq 100); do grep -q "Server is ready" "$out/nats/nats.log" && break; sleep 0.1; done
grep -q "Server is ready" "$out/nats/nats.log" || { echo "fleet_many: nats-server did not start" >&2; exit 1; }

log "output in $out; load: $(uptime)"
{
  echo "load_start $(uptime)"
  echo "$(nats-server --version), $(nproc) cores, $AGENTS agents x $TARGETS hosts (ICMP)"
} >"$out/summary.txt"

for i in $(seq 0 $((AGENTS - 1))); do
  a=$(printf 'edge-%02d' "$i")
  d="$out/$a"
  mkdir -p "$d"
  {
    cat <<EOF
[agent]
name = "$a"
listen = "127.0.0.1:$((AGENT_PORT + i))"
state_dir = "$d/state"

[fleet]
servers = ["nats://127.0.0.1:$NATS_PORT"]
name = "many"

[[sink]]
name = "page"
type = "webhook"
url = "http://127.0.0.1:$RECV_PORT/page"
min_severity = "critical"

[[sink]]
name = "info"
type = "webhook"
url = "http://127.0.0.1:$RECV_PORT/info"
EOF
    for h in $(seq "$TARGETS"); do
      cat <<EOF

[[target]]
name = "host-$h"
address = "$(host_addr "$h")"
site = "bench"
  [[target.probe]]
  kind = "icmp"
EOF
    done
  } >"$d/agent.toml"
  ip netns exec "$P" "$bin" run -c "$d/agent.toml" ${NIGHTSHIFT_ARGS:-} >"$d/agent.log" 2>&1 &
  run_pids+=($!)
done
t_started=$SECONDS

# Ready: every agent connected and seeing every host up. Bounded.
wait_ready() {
  local deadline=$((SECONDS + 120)) i m n why
  while [ $SECONDS -lt $deadline ]; do
    why=""
    for i in $(seq 0 $((AGENTS - 1))); do
      m=$(inp curl -fsS --max-time 2 "http://127.0.0.1:$((AGENT_PORT + i))/metrics" 2>/dev/null || true)
      grep -Eq '^nightshift_fleet_connected(\{[^}]*\})? 1$' <<<"$m" || { why="edge-$i:not-connected"; break; }
      n=$(grep -Ec '^probe_success\{[^}]*kind="icmp"[^}]*\} 1$' <<<"$m" || true)
      [ "$n" = "$TARGETS" ] || { why="edge-$i:$n-of-$TARGETS-up"; break; }
    done
    [ -z "$why" ] && return 0
    sleep 1
  done
  echo "fleet_many: not ready within 120 s: $why" >&2
  return 1
}
wait_ready
log "all $AGENTS agents connected and seeing $TARGETS hosts up after $((SECONDS - t_started)) s"

# Resources of the agents (and nats-server): RSS now, CPU seconds since start.
rss_kb() { local s=0 p; for p in "$@"; do s=$((s + $(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo $s; }
cpu_ticks() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $s; }
tck=$(getconf CLK_TCK)
connz_total() {  # sent_msgs received_msgs sent_bytes received_bytes, summed over the agents' connections
  inp curl -fsS --max-time 5 "http://127.0.0.1:$NATS_MON_PORT/connz?limit=1024" |
    python3 -c '
import json, sys
t = [0, 0, 0, 0]
for c in json.load(sys.stdin).get("connections", []):
    if c.get("name", "").startswith("nightshift "):
        t[0] += c["in_msgs"]; t[1] += c["out_msgs"]; t[2] += c["in_bytes"]; t[3] += c["out_bytes"]
print(*t)'
}

declared() {  # FROM TO: page POSTs that start an incident
  awk -v a="$1" -v b="$2" '$2 == "page" && ($3 == "declared" || $3 == "reopened") && $1 + 0 >= a + 0 && $1 + 0 <= b + 0 { n++ } END { print n + 0 }' "$events"
}
events_of() {  # SOURCE KIND FROM TO
  awk -v s="$1" -v k="$2" -v a="$3" -v b="$4" '$2 == s && $3 == k && $1 + 0 >= a + 0 && $1 + 0 <= b + 0 { n++ } END { print n + 0 }' "$events"
}
first_declared() {  # SINCE
  awk -v t="$1" '$2 == "page" && ($3 == "declared" || $3 == "reopened") && $1 + 0 >= t + 0 { print $1; exit }' "$events"
}
ids() {  # FROM TO: distinct incident ids among the page POSTs
  awk -v a="$1" -v b="$2" '$2 == "page" && $1 + 0 >= a + 0 && $1 + 0 <= b + 0' "$events" |
    grep -o '"idempotency_key":"[^":]*' | sort -u | wc -l
}
delta() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

results="$out/results.txt"  # run host seconds pages ids warnings resolves
: >"$results"
t_first=$(now)
steady_s=0
steady_cpu=0
steady_bus="0 0 0 0"
for run in $(seq "$RUNS"); do
  h=$(((run - 1) % TARGETS + 1))
  addr=$(host_addr "$h")
  warm=$((WARMUP + RANDOM % 11))
  log "run $run/$RUNS: healthy for $warm s, then host-$h ($addr) cut"
  t0=$(now)
  c0=$(cpu_ticks "${run_pids[@]}")
  b0=$(connz_total)
  sleep "$warm"
  t1=$(now)
  c1=$(cpu_ticks "${run_pids[@]}")
  b1=$(connz_total)
  steady_s=$(awk -v s="$steady_s" -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", s + a - b }')
  steady_cpu=$((steady_cpu + c1 - c0))
  steady_bus=$(awk -v s="$steady_bus" -v a="$b0" -v b="$b1" 'BEGIN { split(s, x); split(a, y); split(b, z); printf "%d %d %d %d", x[1] + z[1] - y[1], x[2] + z[2] - y[2], x[3] + z[3] - y[3], x[4] + z[4] - y[4] }')
  t_down=$(now)
  ip -n "$T" addr del "$addr/32" dev vt
  deadline=$((SECONDS + PAGE_WAIT))
  while [ $SECONDS -lt $deadline ] && [ -z "$(first_declared "$t_down")" ]; do sleep 0.2; done
  sleep "$SETTLE"
  t_end=$(now)
  at=$(first_declared "$t_down")
  secs=$([ -n "$at" ] && delta "$at" "$t_down" || echo miss)
  pages=$(declared "$t_down" "$t_end")
  nids=$(ids "$t_down" "$t_end")
  # The info sink takes every severity: what it got beyond the critical pages
  # are warnings (a vantage's own path problem).
  warnings=$(($(events_of info declared "$t_down" "$t_end") - $(events_of page declared "$t_down" "$t_end")))
  ip -n "$T" addr add "$addr/32" dev vt
  t_up=$(now)
  deadline=$((SECONDS + 90))
  while [ $SECONDS -lt $deadline ] && [ "$(events_of page resolved "$t_up" 9999999999)" = 0 ]; do sleep 0.5; done
  sleep 10  # a second resolve would show here
  resolves=$(events_of page resolved "$t_up" "$(now)")
  echo "$run host-$h $secs $pages $nids $warnings $resolves" >>"$results"
  log "run $run: host-$h paged after $secs s: $pages page(s), $nids incident id(s), $warnings warning(s); back: $resolves resolve(s)"
  for p in "${run_pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "fleet_many: agent $p exited (see its log)" >&2; exit 1; }
  done
done
false_pages=$(declared 0 "$t_first")
rss=$(rss_kb "${run_pids[@]}")
nats_rss=$(rss_kb "$nats_pid")
echo "load_end $(uptime)" >>"$out/summary.txt"

{
  echo "runs $RUNS, total $SECONDS s"
  echo
  echo "| outage | host | seconds to page | pages | incident ids | warnings | resolves |"
  echo "|---:|---|---:|---:|---:|---:|---:|"
  awk '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }' "$results"
  echo
  echo "pages before the first cut (false pages): $false_pages"
  echo "time to page: $(awk '$3 != "miss" { print $3 }' "$results" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "median %.2f s, min %.2f s, max %.2f s", m, v[1], v[NR] }')"
  echo "agents' RSS: $((rss / 1024)) MiB in all, $((rss / AGENTS)) KiB each; nats-server $((nats_rss / 1024)) MiB"
  awk -v c="$steady_cpu" -v t="$tck" -v s="$steady_s" -v n="$AGENTS" 'BEGIN { printf "agents CPU while healthy: %.1f%% of one core in all (%.2f%% each) over %.0f s\n", 100 * c / t / s, 100 * c / t / s / n, s }'
  awk -v b="$steady_bus" -v s="$steady_s" -v n="$AGENTS" 'BEGIN { split(b, x); printf "bus while healthy, per agent: sent %.2f msg/s %.0f B/s, received %.2f msg/s %.0f B/s\n", x[1] / s / n, x[3] / s / n, x[2] / s / n, x[4] / s / n }'
} >>"$out/summary.txt"
cat "$out/summary.txt"
