#!/usr/bin/env bash
# Time to page (issues 7, 17): from a namespaced target's link going down to the
# webhook's arrival, nightshift (built-in rules) against Debian's
# blackbox_exporter + Prometheus + Alertmanager on the same outages (a link
# cut, a stopped service, 1 000 hosts behind one router, the agents' own
# uplink), and the false pages of each during random loss on a healthy target.
#
#   sudo NIGHTSHIFT_BIN=build/nightshift bench/page_latency.sh        # full: 5 outages of each kind + 10 min of loss, ~50 min
#   sudo QUICK=1 NIGHTSHIFT_BIN=build/nightshift bench/page_latency.sh # 2 outages of each kind + 2 min of loss, ~25 min
#   RUNS=7 LOSS_SECONDS=300 LOSS_PERCENT=30 ...                       # overrides
#   SETUPS="nightshift-10s nightshift-1s" TCP_RUNS=0 ...              # a subset of the setups; no TCP runs
#   NETNS_PREFIX=fph- ...                                             # names of the two namespaces (default pb)
#   PROBES=tcp SETUPS="nightshift-10s" ...                            # the link cuts with a TCP probe alone
#   SCENARIOS="mass uplink" MASS_RUNS=3 UPLINK_RUNS=3 ...              # a subset of the scenarios (default: all five)
#   MASS_TARGETS=200 MASS_SETUPS="nightshift-depends peer-fast" ...     # a smaller mass outage, fewer setups
#
# Scenarios (SCENARIOS; they run in this order): cut (the target's link goes
# down), tcp (its service stops, the host stays up), mass (1 000 hosts behind
# one router going dark at once), uplink (the agents' own uplink cut, a canary
# configured), loss (random loss on the healthy target: false pages). Runs:
# RUNS for cut, TCP_RUNS (default RUNS) for tcp, MASS_RUNS and UPLINK_RUNS
# (default RUNS) for the routed site.
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
# Each peer pipeline is its own blackbox_exporter, Prometheus and Alertmanager
# (one exporter shared by both is saturated by the fast one at 1 000 targets).
# Each nightshift sends critical incidents (target_down) to a paging sink and
# everything (also packet_loss warnings) to an "-info" sink; only the paging
# sink counts as pages. The peers' only rule is `probe_success == 0 or up == 0`
# (a failed probe, or a timed-out scrape of the pipeline's own exporter).
#
# Network: two namespaces this script creates (probers on 198.51.100.1,
# target on 198.51.100.2, a veth pair between them, no route anywhere else);
# every daemon runs in the probers' namespace on 127.0.0.1. The outage is
# `ip link set vt down` in the target namespace; the loss is an nftables rule
# there dropping LOSS_PERCENT % of the packets from 198.51.100.1 at random.
#
# The mass and uplink scenarios add a routed site, fresh per run (the topology
# of tests/integration/outage_test.cpp, IPv6 only):
#   probers vu 2001:db8:5e::1/64 <-> router up0 2001:db8:5e::2/64
#                                    router lan0 2001:db8:5f::1/64 <-> LAN lan1 2001:db8:5f::2/64,
#                                    local 2001:db8:2::/64 (every address answers: the hosts)
# mass: the router (2001:db8:5e::2) and MASS_TARGETS hosts (2001:db8:2::1000 on,
# site "dc1", groups "core" and "access"), plus the 198.51.100.2 target (site
# "bench": a site that stays up, as a real agent watches more than one), are
# watched by four setups at once:
#   nightshift-depends  defaults, every host `depends_on = "core-router"`
#   nightshift-grouped  defaults, no depends_on (grouping by site and group only)
#   peer-typical, peer-fast  as below, the same targets (group_by [alertname])
# The outage is `ip link set up0 down` in the router's namespace (the probers'
# end loses carrier, keeps its routes, packets vanish). Measured: time to the
# first page, pages, incidents, notifications, and the time until every
# impacted target (router + hosts) is listed: in one incident (nightshift) or
# one notification's firing alerts (Alertmanager), and across all incidents.
# uplink: the router, a canary (2001:db8:2::c8, `canary = true`) and 6 hosts in
# groups web/db behind it, watched by nightshift-10s (defaults) and the peers;
# the outage is `ip link set vu down` on the probers' side (the agents' own
# uplink: routes go, sends fail; the webhook receiver on loopback stays
# reachable). Measured: time to the first page, pages (declared or reopened
# critical incidents; Alertmanager firing notifications) until SETTLE s after
# the last setup's first page, and whether nightshift's first page is the
# isolation page.
#
# Every run starts every daemon afresh (own temp dirs), so no alert, incident,
# flap-damping or Alertmanager group state carries from one outage to the
# next; a random 0-30 s in each warm-up spreads the outage uniformly over the
# setups' probe, scrape and evaluation phases. Every wait is bounded; only PIDs this
# script started are killed; the namespaces are deleted at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

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
SCENARIOS=${SCENARIOS:-cut tcp mass uplink loss}
MASS_RUNS=${MASS_RUNS:-$RUNS}
UPLINK_RUNS=${UPLINK_RUNS:-$RUNS}
MASS_TARGETS=${MASS_TARGETS:-1000}  # hosts behind the router
MASS_SETUPS=${MASS_SETUPS:-nightshift-depends nightshift-grouped peer-typical peer-fast}
UPLINK_SETUPS=${UPLINK_SETUPS:-nightshift-10s peer-typical peer-fast}
SETTLE=${SETTLE:-20}          # mass, uplink: keep counting pages this long after the last setup's first page
NETNS_PREFIX=${NETNS_PREFIX:-pb}
has_setup() { case " $SETUPS " in *" $1 "*) return 0 ;; esac; return 1; }
has_scenario() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }
for sc in $SCENARIOS; do
  case $sc in cut | tcp | mass | uplink | loss) ;; *) echo "page_latency: SCENARIOS: unknown scenario $sc (cut tcp mass uplink loss)" >&2; exit 2 ;; esac
done
CUT_RUNS=$RUNS
has_scenario cut || CUT_RUNS=0
has_scenario tcp || TCP_RUNS=0
has_scenario mass || MASS_RUNS=0
has_scenario uplink || UPLINK_RUNS=0

BENCH=page_latency
. bench/lib.sh
bench_need_root
bench_packages prometheus prometheus-blackbox-exporter prometheus-alertmanager nftables iproute2 python3 curl
bench_binary

out=${OUT_DIR:-$(mktemp -d /tmp/page-latency.XXXXXX)}
mkdir -p "$out"
R=${NETNS_PREFIX}r$$  # mass, uplink: the router's namespace
L=${NETNS_PREFIX}l$$  # and its LAN's (the hosts)
extra_netns=("$R" "$L")

# --- network ---------------------------------------------------------------
bench_pair_network
ip netns exec "$T" nft -f - <<'EOF'
table inet t {
  chain input { type filter hook input priority 0; policy accept; }
}
EOF

# The routed site of the mass and uplink scenarios, fresh per run (see the header).
site_up() {
  ip netns add "$R"
  ip netns add "$L"
  ip -n "$R" link set lo up
  ip -n "$L" link set lo up
  ip -n "$P" link add vu type veth peer name up0 netns "$R"
  ip -n "$P" -6 addr add 2001:db8:5e::1/64 dev vu nodad
  ip -n "$P" link set vu up
  ip -n "$R" -6 addr add 2001:db8:5e::2/64 dev up0 nodad
  ip -n "$R" link set up0 up
  ip -n "$R" link add lan0 type veth peer name lan1 netns "$L"
  ip -n "$R" -6 addr add 2001:db8:5f::1/64 dev lan0 nodad
  ip -n "$R" link set lan0 up
  ip netns exec "$R" sysctl -qw net.ipv6.conf.all.forwarding=1
  ip -n "$R" -6 route add 2001:db8:2::/64 via 2001:db8:5f::2
  ip -n "$L" -6 addr add 2001:db8:5f::2/64 dev lan1 nodad
  ip -n "$L" link set lan1 up
  ip -n "$L" -6 route add default via 2001:db8:5f::1
  ip -n "$L" -6 route add local 2001:db8:2::/64 dev lo
  ip -n "$P" -6 route add 2001:db8:5f::/64 via 2001:db8:5e::2
  ip -n "$P" -6 route add 2001:db8:2::/64 via 2001:db8:5e::2
  for _ in $(seq 50); do inp ping -6 -c1 -W1 2001:db8:2::1000 >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "page_latency: the routed site does not answer (2001:db8:2::1000)" >&2
  return 1
}
site_down() {  # deleting the namespaces deletes the veths, vu included
  ip netns del "$R" 2>/dev/null || true
  ip netns del "$L" 2>/dev/null || true
}

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

# --- the long-lived webhook receiver; blackbox_exporter's config ---------------
RECV_PORT=19680
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
  icmp6:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip6
      ip_protocol_fallback: false
EOF

for _ in $(seq 50); do grep -q listening "$out/receiver.out" && break; sleep 0.1; done

# --- per-run daemons ---------------------------------------------------------

probe_lines() {  # the nightshift target's probes, from PROBES
  for k in $PROBES; do
    case $k in
      icmp) printf '  [[target.probe]]\n  kind = "icmp"\n' ;;
      tcp) printf '  [[target.probe]]\n  kind = "tcp"\n  port = %s\n' "$SVC_PORT" ;;
      *) echo "page_latency: PROBES: unknown kind $k" >&2; exit 2 ;;
    esac
  done
}

# The watched targets of a scenario, as nightshift config: single (the cut,
# tcp and loss target), mass (with or without depends_on), uplink.
single_target() {
  printf '[[target]]\nname = "target"\naddress = "198.51.100.2"\nsite = "bench"\n'
  probe_lines
}
mass_address() { printf '2001:db8:2::%x' $((0x1000 + $1)); }
mass_targets() {  # DEPENDS(0|1)
  printf '[[target]]\nname = "target"\naddress = "198.51.100.2"\nsite = "bench"\n  [[target.probe]]\n  kind = "icmp"\n\n'
  printf '[[target]]\nname = "core-router"\naddress = "2001:db8:5e::2"\nsite = "dc1"\ngroup = "core"\n  [[target.probe]]\n  kind = "icmp"\n\n'
  local dep="" i
  [ "$1" = 1 ] && dep=$'depends_on = "core-router"\n'
  for i in $(seq 0 $((MASS_TARGETS - 1))); do
    printf '[[target]]\nname = "access-%d"\naddress = "%s"\nsite = "dc1"\ngroup = "access"\n%s  [[target.probe]]\n  kind = "icmp"\n\n' \
      "$i" "$(mass_address "$i")" "$dep"
  done
}
UPLINK_HOSTS=6
uplink_address() { printf '2001:db8:2::%x' $((0x14 + $1)); }
uplink_targets() {
  printf '[[target]]\nname = "core-router"\naddress = "2001:db8:5e::2"\ngroup = "core"\n  [[target.probe]]\n  kind = "icmp"\n\n'
  printf '[[target]]\nname = "reference"\naddress = "2001:db8:2::c8"\ngroup = "reference"\ncanary = true\n  [[target.probe]]\n  kind = "icmp"\n\n'
  local i g
  for i in $(seq 0 $((UPLINK_HOSTS - 1))); do
    g=db
    [ $((i % 2)) = 1 ] && g=web
    printf '[[target]]\nname = "web-%d"\naddress = "%s"\ngroup = "%s"\n  [[target.probe]]\n  kind = "icmp"\n\n' "$i" "$(uplink_address "$i")" "$g"
  done
}
# The same targets for the peers, as YAML flow lists (IPv4: module icmp, IPv6: icmp6).
peer_targets_v4() {
  case $1 in uplink) echo '[]' ;; *) echo '["198.51.100.2"]' ;; esac
}
peer_targets_v6() {
  local i list=""
  case $1 in
    mass)
      list='"2001:db8:5e::2"'
      for i in $(seq 0 $((MASS_TARGETS - 1))); do list="$list, \"$(mass_address "$i")\""; done
      ;;
    uplink)
      list='"2001:db8:5e::2", "2001:db8:2::c8"'
      for i in $(seq 0 $((UPLINK_HOSTS - 1))); do list="$list, \"$(uplink_address "$i")\""; done
      ;;
  esac
  echo "[$list]"
}
# How many targets the scenario's outage takes down (all of them listed = this many).
impacted_count() {
  case $1 in mass) echo $((MASS_TARGETS + 1)) ;; uplink) echo $((UPLINK_HOSTS + 2)) ;; *) echo 1 ;; esac
}

nightshift_config() {  # DIR NAME EXTRA_LINES TARGETS_FILE
  cat >"$1/agent.toml" <<EOF
[agent]
name = "$2"
listen = "127.0.0.1:0"
state_dir = "$1/state"

$3
$(cat "$4")

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

# A peer pipeline: its own blackbox_exporter (at a 1 s scrape of 1 000 targets
# one exporter is saturated, and it must not slow the other pipeline's
# probes), Prometheus and Alertmanager. The rule alerts on a failed probe and
# on a failed scrape of the exporter (its probe timed out), as the usual
# blackbox and "instance down" rules do together.
peer_config() {  # DIR SOURCE PROM_PORT AM_PORT INTERVAL SCRAPE_TIMEOUT FOR GROUP_WAIT GROUP_INTERVAL SCENARIO BB_PORT
  local d=$1 bb=${11}
  ip netns exec "$P" prometheus-blackbox-exporter --config.file="$out/blackbox.yml" --web.listen-address="127.0.0.1:$bb" \
    >"$d/blackbox.log" 2>&1 &
  run_pids+=($!)
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
      - targets: $(peer_targets_v4 "${10}")
    relabel_configs:
      - { source_labels: [__address__], target_label: __param_target }
      - { source_labels: [__param_target], target_label: instance }
      - { target_label: __address__, replacement: "127.0.0.1:$bb" }
  - job_name: blackbox6
    metrics_path: /probe
    params: { module: [icmp6] }
    static_configs:
      - targets: $(peer_targets_v6 "${10}")
    relabel_configs:
      - { source_labels: [__address__], target_label: __param_target }
      - { source_labels: [__param_target], target_label: instance }
      - { target_label: __address__, replacement: "127.0.0.1:$bb" }
EOF
  cat >"$d/rules.yml" <<EOF
groups:
  - name: bench
    rules:
      - alert: TargetDown
        expr: probe_success == 0 or up == 0
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

start_all() {  # RUNDIR SCENARIO(single|mass|uplink) SETUPS
  local r=$1 sc=$2 setups=$3 s extra targets agents=""
  mkdir -p "$r"
  for s in $setups; do
    mkdir -p "$r/$s"
    case $s in
      nightshift-*)
        extra=""
        [ "$s" = nightshift-1s ] && extra=$'[defaults]\ninterval = "1s"\n'
        targets="$r/$s/targets.toml"
        case $sc:$s in
          mass:nightshift-depends) mass_targets 1 >"$targets" ;;
          mass:*) mass_targets 0 >"$targets" ;;
          uplink:*) uplink_targets >"$targets" ;;
          *) single_target >"$targets" ;;
        esac
        nightshift_config "$r/$s" "$s" "$extra" "$targets"
        ip netns exec "$P" "$bin" run -c "$r/$s/agent.toml" ${NIGHTSHIFT_ARGS:-} >"$r/$s/agent.log" 2>&1 &
        run_pids+=($!)
        agents="$agents $s"
        ;;
    esac
  done
  if [[ " $setups " == *" peer-typical "* ]]; then
    peer_config "$r/peer-typical" peer-typical 19690 19693 15s 10s 1m 30s 5m "$sc" 19615
    wait_http http://127.0.0.1:19615/metrics 20
    wait_http http://127.0.0.1:19693/-/ready 30
    wait_http http://127.0.0.1:19690/-/ready 30
  fi
  if [[ " $setups " == *" peer-fast "* ]]; then
    peer_config "$r/peer-fast" peer-fast 19691 19694 1s 800ms 5s 1s 5s "$sc" 19616
    wait_http http://127.0.0.1:19616/metrics 20
    wait_http http://127.0.0.1:19694/-/ready 30
    wait_http http://127.0.0.1:19691/-/ready 30
  fi
  for s in $agents; do
    for _ in $(seq 300); do grep -q "msg=listening" "$r/$s/agent.log" && break; sleep 0.1; done
    grep -q "msg=listening" "$r/$s/agent.log" || { echo "page_latency: $s did not start:" >&2; cat "$r/$s/agent.log" >&2; exit 1; }
  done
  local pid
  for pid in "${run_pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "page_latency: a daemon of $r exited early (see its log there)" >&2; exit 1; }
  done
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
for run in $(seq "$CUT_RUNS"); do
  rd="$out/run$run"
  start_all "$rd" single "$SETUPS"
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
  start_all "$rd" single "$SETUPS"
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

# --- mass outage and uplink cut: the routed site --------------------------------
# A page: a nightshift incident declared or reopened on the paging sink, or an
# Alertmanager "firing" notification.
is_page='($3 == "declared" || $3 == "reopened" || $3 == "firing")'
# first_real_page SOURCE SINCE: arrival time of SOURCE's first page after SINCE
first_real_page() {
  awk -v s="$1" -v t="$2" '$2 == s && '"$is_page"' && $1 + 0 >= t + 0 { print $1; exit }' "$events"
}
real_pages() {  # SOURCE FROM TO
  awk -v s="$1" -v a="$2" -v b="$3" '$2 == s && '"$is_page"' && $1 + 0 >= a + 0 && $1 + 0 <= b + 0 { n++ } END { print n + 0 }' "$events"
}
notifications() {  # SOURCE FROM TO: every POST of SOURCE and SOURCE-info (its info sink)
  awk -v s="$1" -v a="$2" -v b="$3" '($2 == s || $2 == s "-info") && $1 + 0 >= a + 0 && $1 + 0 <= b + 0 { n++ } END { print n + 0 }' "$events"
}
incidents() {  # SOURCE FROM TO: distinct incident ids (Alertmanager: group keys) in them
  awk -v s="$1" -v a="$2" -v b="$3" '($2 == s || $2 == s "-info") && $4 != "-" && $1 + 0 >= a + 0 && $1 + 0 <= b + 0 && !seen[$4]++ { n++ } END { print n + 0 }' "$events"
}
# listed_at SOURCE SINCE N MODE: arrival of the notification after which N
# impacted targets are listed — MODE one: in one incident (or one
# notification's firing alerts), MODE all: summed over the incidents (each at
# its largest list so far) — or nothing.
listed_at() {
  awk -v s="$1" -v t="$2" -v n="$3" -v mode="$4" '
    ($2 == s || $2 == s "-info") && $4 != "-" && $1 + 0 >= t + 0 {
      if ($5 > c[$4]) { sum += $5 - c[$4]; c[$4] = $5 }
      if ((mode == "one" ? c[$4] : sum) >= n) { print $1; exit }
    }' "$events"
}
largest_list() {  # SOURCE FROM TO: the most targets one incident (one notification's firing alerts) listed
  awk -v s="$1" -v a="$2" -v b="$3" '($2 == s || $2 == s "-info") && $4 != "-" && $1 + 0 >= a + 0 && $1 + 0 <= b + 0 && $5 > m { m = $5 } END { print m + 0 }' "$events"
}
since() {  # AT T0: AT - T0 in seconds, or "miss" when AT is empty
  if [ -n "$1" ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; else echo miss; fi
}

# One outage of the routed site: SCENARIO (mass|uplink) RUN SETUPS RESULTS.
# Results: one line per setup: run setup first_page_s pages incidents
# notifications all_listed_s one_incident_listed_s first_page_title_is_isolation(0|1|-) largest_list
site_outage() {
  local sc=$1 run=$2 setups=$3 results=$4 rd="$out/$1$2" n s t_down deadline missing t_end at
  n=$(impacted_count "$sc")
  site_up
  start_all "$rd" "$sc" "$setups"
  warm=$(warmup)
  log "$sc run $run: healthy for $warm s"
  sleep "$warm"
  t_down=$(now)
  case $sc in
    mass) ip -n "$R" link set up0 down ;;  # the router's link to us, from its side
    uplink) ip -n "$P" link set vu down ;; # the agents' own uplink
  esac
  log "$sc run $run: cut at $t_down"
  # Until every setup has paged (mass: and listed all N in one incident),
  # bounded by PAGE_WAIT; then SETTLE s more, for pages that come late.
  deadline=$((SECONDS + PAGE_WAIT))
  while [ $SECONDS -lt $deadline ]; do
    missing=0
    for s in $setups; do
      [ -n "$(first_real_page "$s" "$t_down")" ] || { missing=1; break; }
      if [ "$sc" = mass ]; then [ -n "$(listed_at "$s" "$t_down" "$n" all)" ] || { missing=1; break; }; fi
    done
    [ $missing = 0 ] && break
    sleep 0.5
  done
  sleep "$SETTLE"
  t_end=$(now)
  for s in $setups; do
    at=$(first_real_page "$s" "$t_down")
    local iso=-
    if [ -n "$at" ] && [[ $s == nightshift-* ]]; then
      iso=0
      awk -v s="$s" -v a="$at" '$2 == s && $1 == a' "$events" | grep -q 'title: .*isolated' && iso=1
    fi
    echo "$run $s $(since "$at" "$t_down") $(real_pages "$s" "$t_down" "$t_end") $(incidents "$s" "$t_down" "$t_end")" \
      "$(notifications "$s" "$t_down" "$t_end") $(since "$(listed_at "$s" "$t_down" "$n" all)" "$t_down")" \
      "$(since "$(listed_at "$s" "$t_down" "$n" one)" "$t_down") $iso $(largest_list "$s" "$t_down" "$t_end")" >>"$results"
    log "$sc run $run: $(tail -1 "$results")"
    local before
    before=$(real_pages "$s" 0 "$t_down")
    [ "$before" = 0 ] || echo "$sc$run $s pages_before_cut $before" >>"$out/anomalies.txt"
  done
  stop_all
  site_down
  mv "$events" "$rd/events.log"
  : >"$events"
}

mass_results="$out/mass.txt"
uplink_results="$out/uplink.txt"
: >"$mass_results"
: >"$uplink_results"
for run in $(seq "$MASS_RUNS"); do site_outage mass "$run" "$MASS_SETUPS" "$mass_results"; done
for run in $(seq "$UPLINK_RUNS"); do site_outage uplink "$run" "$UPLINK_SETUPS" "$uplink_results"; done

# --- false pages under random loss ---------------------------------------------
: >"$out/false_pages.txt"
seen=0
dropped=0
if has_scenario loss; then
  rd="$out/loss"
  start_all "$rd" single "$SETUPS"
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
  for s in $SETUPS; do
    echo "$s $(pages "$s" "$t_loss" "$t_end") $(pages "$s-info" "$t_loss" "$t_end")" >>"$out/false_pages.txt"
  done
fi
echo "load_end $(uptime)" >>"$out/summary.txt"

# --- summary -------------------------------------------------------------------
# stats FILE SETUP FIELD: "median p95 min max" of a numeric field over the runs
# (p95 nearest rank; "miss" values left out), or "- - - -"
stats() {
  awk -v s="$2" -v f="$3" '$2 == s && $f != "miss" && $f != "-" { print $f }' "$1" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - - -"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; k = int(0.95 * NR); if (k < 0.95 * NR) k++; printf "%.2f %.2f %.2f %.2f\n", m, v[k], v[1], v[NR] }'
}
misses() { awk -v s="$2" -v f="$3" '$2 == s && $f == "miss"' "$1" | wc -l; }
each() { awk -v s="$2" -v f="$3" '$2 == s { printf "%s%s", sep, $f; sep = ", " }' "$1"; }  # the field of every run
{
  echo "scenarios: $SCENARIOS; total $((SECONDS - bench_start)) s"
  if [ "$CUT_RUNS" -gt 0 ]; then
    echo
    loss_note="no loss run"
    has_scenario loss && loss_note="loss ${LOSS_PERCENT}% for ${LOSS_SECONDS}s ($dropped of $seen packets from the probers dropped)"
    echo "Link cut, $CUT_RUNS runs; $loss_note:"
    echo
    echo "| setup | median s | p95 s (nearest rank) | min s | max s | missed | false pages in ${LOSS_SECONDS}s at ${LOSS_PERCENT}% loss | other notifications (info sink) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for s in $SETUPS; do
      read -r med p95 mn mx <<<"$(stats "$latencies" "$s" 3)"
      fp=-
      info=-
      if [ -s "$out/false_pages.txt" ]; then read -r _ fp info < <(grep "^$s " "$out/false_pages.txt"); fi
      case $s in peer-*) info=n/a ;; esac
      echo "| $s | $med | $p95 | $mn | $mx | $(misses "$latencies" "$s" 3) | $fp | $info |"
    done
  elif [ -s "$out/false_pages.txt" ]; then
    echo
    echo "Loss ${LOSS_PERCENT}% for ${LOSS_SECONDS}s ($dropped of $seen packets from the probers dropped):"
    echo
    echo "| setup | false pages | other notifications (info sink) |"
    echo "|---|---:|---:|"
    while read -r s fp info; do
      case $s in peer-*) info=n/a ;; esac
      echo "| $s | $fp | $info |"
    done <"$out/false_pages.txt"
  fi
  if [ "$TCP_RUNS" -gt 0 ]; then
    echo
    echo "TCP service stopped (host up), $TCP_RUNS runs:"
    echo
    echo "| setup | median s | p95 s | min s | max s | missed |"
    echo "|---|---:|---:|---:|---:|---:|"
    for s in $TCP_SETUPS; do
      read -r med p95 mn mx <<<"$(stats "$tcp_latencies" "$s" 3)"
      echo "| $s tcp | $med | $p95 | $mn | $mx | $(misses "$tcp_latencies" "$s" 3) |"
    done
  fi
  if [ "$MASS_RUNS" -gt 0 ]; then
    echo
    echo "Mass outage: the router and $MASS_TARGETS hosts behind it ($(impacted_count mass) targets) dark at once, $MASS_RUNS runs;"
    echo "pages, incidents and notifications per run until ${SETTLE}s after the last setup's page and full list:"
    echo
    echo "| setup | first page: median s | max s | pages | incidents (AM: groups) | notifications | all listed, one incident: median s | max s | all listed, summed over incidents: median s | max s | largest list | runs not all listed | missed pages |"
    echo "|---|---:|---:|---|---|---|---:|---:|---:|---:|---|---:|---:|"
    for s in $MASS_SETUPS; do
      read -r med _ _ mx <<<"$(stats "$mass_results" "$s" 3)"
      read -r omed _ _ omx <<<"$(stats "$mass_results" "$s" 8)"
      read -r amed _ _ amx <<<"$(stats "$mass_results" "$s" 7)"
      echo "| $s | $med | $mx | $(each "$mass_results" "$s" 4) | $(each "$mass_results" "$s" 5) | $(each "$mass_results" "$s" 6) | $omed | $omx | $amed | $amx | $(each "$mass_results" "$s" 10) | $(misses "$mass_results" "$s" 7) | $(misses "$mass_results" "$s" 3) |"
    done
  fi
  if [ "$UPLINK_RUNS" -gt 0 ]; then
    echo
    echo "Uplink cut: the agents' own uplink, $((UPLINK_HOSTS + 2)) targets behind it (a router, a canary, $UPLINK_HOSTS hosts), $UPLINK_RUNS runs;"
    echo "pages per run until ${SETTLE}s after the last setup's first page:"
    echo
    echo "| setup | first page: median s | max s | pages | first page is the isolation page | incidents (AM: groups) | notifications | missed pages |"
    echo "|---|---:|---:|---|---|---|---|---:|"
    for s in $UPLINK_SETUPS; do
      read -r med _ _ mx <<<"$(stats "$uplink_results" "$s" 3)"
      echo "| $s | $med | $mx | $(each "$uplink_results" "$s" 4) | $(each "$uplink_results" "$s" 9) | $(each "$uplink_results" "$s" 5) | $(each "$uplink_results" "$s" 6) | $(misses "$uplink_results" "$s" 3) |"
    done
  fi
  if [ -s "$out/anomalies.txt" ]; then
    echo
    echo "anomalies (pages before an outage):"
    cat "$out/anomalies.txt"
  fi
} >>"$out/summary.txt"
cat "$out/summary.txt"
