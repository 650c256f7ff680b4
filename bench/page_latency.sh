#!/usr/bin/env bash
# Time to page (issue 7): from a namespaced target's link going down to the
# webhook's arrival, nightshift (built-in rules) against Debian's
# blackbox_exporter + Prometheus + Alertmanager on the same outages, and the
# false pages of each during random loss on a healthy target.
#
#   sudo NIGHTSHIFT_BIN=build/nightshift bench/page_latency.sh        # full: 5 outages + 10 min of loss, ~27 min
#   sudo QUICK=1 NIGHTSHIFT_BIN=build/nightshift bench/page_latency.sh # 2 outages + 2 min of loss, ~9 min
#   RUNS=7 LOSS_SECONDS=300 LOSS_PERCENT=30 ...                       # overrides
#   SETUPS="nightshift-10s nightshift-1s" TCP_RUNS=0 ...              # a subset of the setups; no TCP runs
#   NETNS_PREFIX=fph- ...                                             # names of the two namespaces (default pb)
#   PROBES=tcp SETUPS="nightshift-10s" ...                            # the link cuts with a TCP probe alone
#
# Without NIGHTSHIFT_BIN it builds build-bench (Release) first.
#
# Four setups watch the same target at once, each posting to its own path of
# one webhook receiver (bench/page_receiver.py):
#   nightshift-10s  the agent as a user starts it: defaults (interval 10s, timeout 3s), built-in rules
#   nightshift-1s   the same with interval = "1s" (the timeout fits itself: 500ms)
# Each nightshift target also has a TCP probe of a small HTTP server on the
# target (port 19650); after the link cuts, the same number of runs stop that
# service with the host up (nightshift rows only: the peers probe ICMP).
#   peer-typical    scrape and evaluation 15s, for: 1m, Alertmanager group_wait 30s (group_interval 5m)
#   peer-fast       scrape and evaluation 1s (scrape timeout 800ms), for: 5s, group_wait 1s (group_interval 5s)
# Each nightshift sends critical incidents (target_down) to a paging sink and
# everything (also packet_loss warnings) to an "-info" sink; only the paging
# sink counts as pages. The peers' only rule is `probe_success == 0`.
#
# Network: two namespaces this script creates (probers on 198.51.100.1,
# target on 198.51.100.2, a veth pair between them, no route anywhere else);
# every daemon runs in the probers' namespace on 127.0.0.1. The outage is
# `ip link set vt down` in the target namespace; the loss is an nftables rule
# there dropping LOSS_PERCENT % of the packets from 198.51.100.1 at random.
#
# Every run starts every daemon afresh (own temp dirs), so no alert, incident,
# flap-damping or Alertmanager group state carries from one outage to the
# next; a random 0-30 s in each warm-up spreads the outage uniformly over the
# setups' probe, scrape and evaluation phases. Every wait is bounded; only PIDs this
# script started are killed; the namespaces are deleted at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  RUNS=${RUNS:-2}
  LOSS_SECONDS=${LOSS_SECONDS:-120}
else
  RUNS=${RUNS:-5}
  LOSS_SECONDS=${LOSS_SECONDS:-600}
fi
LOSS_PERCENT=${LOSS_PERCENT:-30}
WARMUP=${WARMUP:-40}          # seconds of health before each outage (plus 0-30 s at random)
PAGE_WAIT=${PAGE_WAIT:-240}   # give up on a setup's page after this many seconds
SETUPS=${SETUPS:-nightshift-10s nightshift-1s peer-typical peer-fast}
TCP_RUNS=${TCP_RUNS:-$RUNS}
PROBES=${PROBES:-icmp tcp}    # the nightshift target's probes; PROBES=tcp: the link cuts measure TCP alone
NETNS_PREFIX=${NETNS_PREFIX:-pb}
has_setup() { case " $SETUPS " in *" $1 "*) return 0 ;; esac; return 1; }

if [ "$(id -u)" -ne 0 ]; then echo "page_latency: needs root (network namespaces, raw sockets, nftables)" >&2; exit 2; fi
for p in prometheus prometheus-blackbox-exporter prometheus-alertmanager nftables iproute2 python3; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" >/dev/null
  fi
done
if [ -z "${NIGHTSHIFT_BIN:-}" ]; then
  cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DNIGHTSHIFT_TESTS=OFF >/dev/null
  cmake --build build-bench --target nightshift -j2 >/dev/null
  NIGHTSHIFT_BIN=$root/build-bench/nightshift
fi
bin=$(readlink -f "$NIGHTSHIFT_BIN")

out=${OUT_DIR:-$(mktemp -d /tmp/page-latency.XXXXXX)}
mkdir -p "$out"
P=${NETNS_PREFIX}p$$  # probers' namespace
T=${NETNS_PREFIX}t$$  # target's namespace
pids=()

cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null
  done
  ip netns del "$P" 2>/dev/null
  ip netns del "$T" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
now() { date +%s.%N; }
# In the probers' namespace. Daemons are started with `ip netns exec ... &`
# directly (never through this function), so that $! is the daemon's own PID.
inp() { ip netns exec "$P" "$@"; }

# --- network ---------------------------------------------------------------
ip netns add "$P"
ip netns add "$T"
ip -n "$P" link set lo up
ip -n "$T" link set lo up
ip -n "$P" link add vp type veth peer name vt netns "$T"
ip -n "$P" addr add 198.51.100.1/24 dev vp
ip -n "$T" addr add 198.51.100.2/24 dev vt
ip -n "$P" link set vp up
ip -n "$T" link set vt up
ip netns exec "$T" nft -f - <<'EOF'
table inet t {
  chain input { type filter hook input priority 0; policy accept; }
}
EOF
for _ in $(seq 50); do inp ping -c1 -W1 198.51.100.2 >/dev/null 2>&1 && break; sleep 0.1; done

# --- the service on the target: a TCP probe's outage is stopping it ------------
SVC_PORT=19650
svc_pid=
mkdir -p "$out/www"
start_service() {
  ip netns exec "$T" python3 -m http.server "$SVC_PORT" --bind 198.51.100.2 --directory "$out/www" \
    >>"$out/service.log" 2>&1 &
  svc_pid=$!
  pids+=($svc_pid)
  for _ in $(seq 50); do
    inp curl -fsS -o /dev/null --max-time 1 "http://198.51.100.2:$SVC_PORT/" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "page_latency: the service did not start" >&2
  return 1
}
stop_service() {
  kill "$svc_pid" 2>/dev/null || true
  wait "$svc_pid" 2>/dev/null || true
}
start_service

# --- long-lived helpers: receiver and blackbox_exporter (both stateless) ----
RECV_PORT=19680
BB_PORT=19615
events="$out/events.log"
: >"$events"
ip netns exec "$P" python3 "$root/bench/page_receiver.py" "$RECV_PORT" "$events" >"$out/receiver.out" 2>&1 &
pids+=($!)
cat >"$out/blackbox.yml" <<'EOF'
modules:
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
EOF
ip netns exec "$P" prometheus-blackbox-exporter --config.file="$out/blackbox.yml" --web.listen-address="127.0.0.1:$BB_PORT" \
  >"$out/blackbox.log" 2>&1 &
pids+=($!)

wait_http() {  # URL SECONDS
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    inp curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "page_latency: $1 did not answer within $2 s" >&2
  return 1
}
wait_http "http://127.0.0.1:$BB_PORT/metrics" 20
for _ in $(seq 50); do grep -q listening "$out/receiver.out" && break; sleep 0.1; done

# --- per-run daemons ---------------------------------------------------------
run_pids=()

probe_lines() {  # the nightshift target's probes, from PROBES
  for k in $PROBES; do
    case $k in
      icmp) printf '  [[target.probe]]\n  kind = "icmp"\n' ;;
      tcp) printf '  [[target.probe]]\n  kind = "tcp"\n  port = %s\n' "$SVC_PORT" ;;
      *) echo "page_latency: PROBES: unknown kind $k" >&2; exit 2 ;;
    esac
  done
}

nightshift_config() {  # DIR NAME INTERVAL_LINES
  cat >"$1/agent.toml" <<EOF
[agent]
name = "$2"
listen = "127.0.0.1:0"
state_dir = "$1/state"

$3
[[target]]
name = "target"
address = "198.51.100.2"
site = "bench"
$(probe_lines)

[[sink]]
name = "page"
type = "webhook"
url = "http://127.0.0.1:$RECV_PORT/$2"
min_severity = "critical"

[[sink]]
name = "info"
type = "webhook"
url = "http://127.0.0.1:$RECV_PORT/$2-info"
EOF
}

peer_config() {  # DIR SOURCE PROM_PORT AM_PORT INTERVAL SCRAPE_TIMEOUT FOR GROUP_WAIT GROUP_INTERVAL
  local d=$1
  cat >"$d/prometheus.yml" <<EOF
global:
  scrape_interval: $5
  scrape_timeout: $6
  evaluation_interval: $5
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$4"]
rule_files: ["$d/rules.yml"]
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params: { module: [icmp] }
    static_configs:
      - targets: ["198.51.100.2"]
    relabel_configs:
      - { source_labels: [__address__], target_label: __param_target }
      - { source_labels: [__param_target], target_label: instance }
      - { target_label: __address__, replacement: "127.0.0.1:$BB_PORT" }
EOF
  cat >"$d/rules.yml" <<EOF
groups:
  - name: bench
    rules:
      - alert: TargetDown
        expr: probe_success == 0
        for: $7
        labels: { severity: critical }
EOF
  cat >"$d/alertmanager.yml" <<EOF
route:
  receiver: hook
  group_by: [alertname]
  group_wait: $8
  group_interval: $9
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:$RECV_PORT/$2
        send_resolved: true
EOF
  mkdir -p "$d/tsdb" "$d/am"
  ip netns exec "$P" prometheus-alertmanager --config.file="$d/alertmanager.yml" --storage.path="$d/am" \
    --web.listen-address="127.0.0.1:$4" --cluster.listen-address= >"$d/alertmanager.log" 2>&1 &
  run_pids+=($!)
  ip netns exec "$P" prometheus --config.file="$d/prometheus.yml" --storage.tsdb.path="$d/tsdb" \
    --web.listen-address="127.0.0.1:$3" >"$d/prometheus.log" 2>&1 &
  run_pids+=($!)
}

start_all() {  # RUNDIR
  local r=$1
  mkdir -p "$r"/{nightshift-10s,nightshift-1s,peer-typical,peer-fast}
  nightshift_config "$r/nightshift-10s" nightshift-10s ""
  nightshift_config "$r/nightshift-1s" nightshift-1s $'[defaults]\ninterval = "1s"\n'
  for s in nightshift-10s nightshift-1s; do
    has_setup "$s" || continue
    ip netns exec "$P" "$bin" run -c "$r/$s/agent.toml" ${NIGHTSHIFT_ARGS:-} >"$r/$s/agent.log" 2>&1 &
    run_pids+=($!)
  done
  if has_setup peer-typical; then
    peer_config "$r/peer-typical" peer-typical 19690 19693 15s 10s 1m 30s 5m
    wait_http http://127.0.0.1:19693/-/ready 30
    wait_http http://127.0.0.1:19690/-/ready 30
  fi
  if has_setup peer-fast; then
    peer_config "$r/peer-fast" peer-fast 19691 19694 1s 800ms 5s 1s 5s
    wait_http http://127.0.0.1:19694/-/ready 30
    wait_http http://127.0.0.1:19691/-/ready 30
  fi
  for s in nightshift-10s nightshift-1s; do
    has_setup "$s" || continue
    for _ in $(seq 100); do grep -q "msg=listening" "$r/$s/agent.log" && break; sleep 0.1; done
    grep -q "msg=listening" "$r/$s/agent.log" || { echo "page_latency: $s did not start:" >&2; cat "$r/$s/agent.log" >&2; exit 1; }
  done
  local pid
  for pid in "${run_pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "page_latency: a daemon of $r exited early (see its log there)" >&2; exit 1; }
  done
}

stop_all() {
  local pid
  for pid in "${run_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${run_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  run_pids=()
}

# first_page SOURCE SINCE: arrival time of SOURCE's first non-resolve POST after SINCE, or nothing
first_page() {
  awk -v s="$1" -v t="$2" '$2 == s && $3 != "resolved" && $1 + 0 >= t + 0 { print $1; exit }' "$events"
}
# pages SOURCE FROM TO: number of non-resolve POSTs from SOURCE arriving in [FROM, TO]
pages() {
  awk -v s="$1" -v a="$2" -v b="$3" '$2 == s && $3 != "resolved" && $1 + 0 >= a + 0 && $1 + 0 <= b + 0 { n++ } END { print n + 0 }' "$events"
}

# WARMUP plus a uniform 0-30 s with ms resolution: both nightshift's and
# Prometheus' schedules are phased to the wall clock (an offset per target
# modulo the interval), and 30 s is a multiple of every interval here (1, 10,
# 15 s), so the cut lands at a uniformly random phase of each.
warmup() {
  local ms=$(((RANDOM * 32768 + RANDOM) % 30000))
  printf '%d.%03d\n' $((WARMUP + ms / 1000)) $((ms % 1000))
}

bench_start=$SECONDS
log "output in $out; load: $(uptime)"
echo "load_start $(uptime)" >"$out/summary.txt"

# --- outages -----------------------------------------------------------------
latencies="$out/latencies.txt"  # run setup seconds|miss
: >"$latencies"
for run in $(seq "$RUNS"); do
  rd="$out/run$run"
  start_all "$rd"
  warm=$(warmup)
  log "run $run/$RUNS: healthy for $warm s"
  sleep "$warm"
  # Every setup must be healthy (no page yet) before the cut.
  t_down=$(now)
  ip -n "$T" link set vt down
  log "run $run: link down at $t_down"
  deadline=$((SECONDS + PAGE_WAIT))
  while [ $SECONDS -lt $deadline ]; do
    missing=0
    for s in $SETUPS; do [ -n "$(first_page "$s" "$t_down")" ] || missing=1; done
    [ $missing = 0 ] && break
    sleep 0.2
  done
  for s in $SETUPS; do
    at=$(first_page "$s" "$t_down")
    if [ -n "$at" ]; then
      d=$(awk -v a="$at" -v b="$t_down" 'BEGIN { printf "%.3f", a - b }')
    else
      d=miss
    fi
    echo "$run $s $d" >>"$latencies"
    log "run $run: $s $d s"
  done
  ip -n "$T" link set vt up
  stop_all
  # Pages before the cut would be false pages of a healthy target: record them.
  for s in $SETUPS; do
    n=$(pages "$s" 0 "$t_down")
    [ "$n" = 0 ] || echo "$run $s pages_before_cut $n" >>"$out/anomalies.txt"
  done
  mv "$events" "$rd/events.log"
  : >"$events"
done

# --- TCP: the service stops, the host stays up (nightshift only: the peers probe ICMP)
TCP_SETUPS=""
for s in nightshift-10s nightshift-1s; do has_setup "$s" && TCP_SETUPS="$TCP_SETUPS $s"; done
tcp_latencies="$out/tcp_latencies.txt"
: >"$tcp_latencies"
for run in $(seq "$TCP_RUNS"); do
  rd="$out/tcp$run"
  start_all "$rd"
  warm=$(warmup)
  log "tcp run $run/$RUNS: healthy for $warm s"
  sleep "$warm"
  t_down=$(now)
  stop_service
  log "tcp run $run: service stopped at $t_down"
  deadline=$((SECONDS + PAGE_WAIT))
  while [ $SECONDS -lt $deadline ]; do
    missing=0
    for s in $TCP_SETUPS; do [ -n "$(first_page "$s" "$t_down")" ] || missing=1; done
    [ $missing = 0 ] && break
    sleep 0.2
  done
  for s in $TCP_SETUPS; do
    at=$(first_page "$s" "$t_down")
    if [ -n "$at" ]; then
      d=$(awk -v a="$at" -v b="$t_down" 'BEGIN { printf "%.3f", a - b }')
    else
      d=miss
    fi
    echo "$run $s $d" >>"$tcp_latencies"
    log "tcp run $run: $s $d s"
    n=$(pages "$s" 0 "$t_down")
    [ "$n" = 0 ] || echo "tcp$run $s pages_before_stop $n" >>"$out/anomalies.txt"
  done
  start_service
  stop_all
  mv "$events" "$rd/events.log"
  : >"$events"
done

# --- false pages under random loss ---------------------------------------------
rd="$out/loss"
start_all "$rd"
warm=$(warmup)
log "loss: healthy for $warm s, then $LOSS_PERCENT % random loss for $LOSS_SECONDS s"
sleep "$warm"
t_loss=$(now)
ip netns exec "$T" nft add rule inet t input ip saddr 198.51.100.1 counter
ip netns exec "$T" nft add rule inet t input ip saddr 198.51.100.1 numgen random mod 100 "<" "$LOSS_PERCENT" counter drop
sleep "$LOSS_SECONDS"
t_end=$(now)
# What the loss really was: packets from the probers, and how many were dropped.
ip netns exec "$T" nft list chain inet t input >"$rd/nft.txt"
read -r seen dropped < <(awk '/counter packets/ { for (i = 1; i < NF; i++) if ($i == "packets") v[++n] = $(i + 1) } END { print v[1] + 0, v[2] + 0 }' "$rd/nft.txt")
ip netns exec "$T" nft flush chain inet t input
stop_all
mv "$events" "$rd/events.log"
events="$rd/events.log"
: >"$out/false_pages.txt"
for s in $SETUPS; do
  echo "$s $(pages "$s" "$t_loss" "$t_end") $(pages "$s-info" "$t_loss" "$t_end")" >>"$out/false_pages.txt"
done
echo "load_end $(uptime)" >>"$out/summary.txt"

# --- summary -------------------------------------------------------------------
{
  echo "runs $RUNS, loss ${LOSS_PERCENT}% for ${LOSS_SECONDS}s ($dropped of $seen packets from the probers dropped), total $((SECONDS - bench_start)) s"
  echo
  echo "| setup | median s | p95 s (nearest rank) | min s | max s | missed | false pages in ${LOSS_SECONDS}s at ${LOSS_PERCENT}% loss | other notifications (info sink) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for s in $SETUPS; do
    stats=$(awk -v s="$s" '$2 == s && $3 != "miss" { print $3 }' "$latencies" | sort -g |
      awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - - -"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; k = int(0.95 * NR); if (k < 0.95 * NR) k++; printf "%.2f %.2f %.2f %.2f\n", m, v[k], v[1], v[NR] }')
    missed=$(awk -v s="$s" '$2 == s && $3 == "miss"' "$latencies" | wc -l)
    read -r med p95 mn mx <<<"$stats"
    read -r _ fp info < <(grep "^$s " "$out/false_pages.txt")
    case $s in peer-*) info=n/a ;; esac
    echo "| $s | $med | $p95 | $mn | $mx | $missed | $fp | $info |"
  done
  echo
  echo "TCP service stopped (host up), $TCP_RUNS runs:"
  echo
  echo "| setup | median s | p95 s | min s | max s | missed |"
  echo "|---|---:|---:|---:|---:|---:|"
  for s in $TCP_SETUPS; do
    stats=$(awk -v s="$s" '$2 == s && $3 != "miss" { print $3 }' "$tcp_latencies" | sort -g |
      awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - - -"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; k = int(0.95 * NR); if (k < 0.95 * NR) k++; printf "%.2f %.2f %.2f %.2f\n", m, v[k], v[1], v[NR] }')
    missed=$(awk -v s="$s" '$2 == s && $3 == "miss"' "$tcp_latencies" | wc -l)
    read -r med p95 mn mx <<<"$stats"
    echo "| $s tcp | $med | $p95 | $mn | $mx | $missed |"
  done
} >>"$out/summary.txt"
cat "$out/summary.txt"
