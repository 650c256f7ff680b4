#!/usr/bin/env bash
# Time to page of a fleet (issue 18), end to end and side by side in one run:
# three nightshift agents in one fleet on a real nats-server (JetStream) paging
# through their webhook sink, against the shipped Prometheus quorum rule
# (TargetDownFromSeveralVantagePoints in deploy/prometheus/rules/nightshift.yml)
# evaluated by a real Prometheus scraping three agents' /metrics and routed by a
# real Alertmanager (the shipped deploy/alertmanager/alertmanager.yml) to the
# same webhook receiver (bench/page_receiver.py).
#
#   sudo NIGHTSHIFT_BIN=build/nightshift bench/fleet_page.sh           # 5 outages, ~15 min
#   sudo QUICK=1 NIGHTSHIFT_BIN=build/nightshift bench/fleet_page.sh   # 2 outages, ~6 min
#   RUNS=7 WARMUP=40 PAGE_WAIT=300 NETNS_PREFIX=fb PORT_BASE=45300 ... # overrides
#
# Without NIGHTSHIFT_BIN it builds build-bench (Release) first.
#
# Six agents at the defaults (interval 10s, timeout 3s, built-in rules) watch
# the same namespaced host (an ICMP probe and a TCP probe of a small HTTP
# server on it), under two target names so each pipeline's pages can be told
# apart:
#   fleet-a/b/c  target "target-fleet", [fleet] on the nats-server (defaults
#                apart from servers and name); critical incidents go to the
#                webhook path /fleet, everything to /fleet-info.
#   prom-a/b/c   target "target-prom", no fleet, each with its own critical
#                webhook (/alone-<agent>: what three agents without a fleet page,
#                a reference row); Prometheus scrapes all six agents with the shipped
#                global settings (15 s scrape and evaluation) and rules, and its
#                Alertmanager pages at /prom-page (the shipped route: group_wait 10s).
# The shipped rule counts only agents outside a fleet, so the fleet agents'
# target must give no Prometheus page at all: that count is in the summary too.
# A page is a "declared" or "reopened" notification (an agent's "updated" of
# the same incident keeps its id and dedup key), or Alertmanager's "firing".
#
# Network: two namespaces this script creates (probers on 198.51.100.1, target
# on 198.51.100.2, a veth pair between them, no route anywhere else); every
# daemon runs in the probers' namespace on 127.0.0.1, ports PORT_BASE..+99.
# The outage is `ip link set vt down` in the target namespace.
#
# Every run starts every daemon afresh (nats-server with an empty JetStream
# store, agents with empty state, Prometheus and Alertmanager with empty
# storage), so nothing carries from one outage to the next; a random 0-30 s in
# each warm-up spreads the cut over the agents' rounds and Prometheus' scrape
# and evaluation phases. Bus cost is read from nats-server's monitoring
# endpoint (/connz, per agent connection) over the healthy warm-up and over the
# outage. Every wait is bounded; only PIDs this script started are killed; the
# namespaces are deleted at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=${RUNS:-2}; else RUNS=${RUNS:-5}; fi
WARMUP=${WARMUP:-30}          # seconds of health after every daemon is ready (plus 0-30 s at random)
PAGE_WAIT=${PAGE_WAIT:-240}   # give up on a pipeline's page after this many seconds
SETTLE=${SETTLE:-15}          # after both pages, keep counting this long (a second page would show here)
NETNS_PREFIX=${NETNS_PREFIX:-fb}
PORT_BASE=${PORT_BASE:-45300}

NATS_PORT=$PORT_BASE
NATS_MON_PORT=$((PORT_BASE + 1))
RECV_PORT=$((PORT_BASE + 10))
PROM_PORT=$((PORT_BASE + 20))
AM_PORT=$((PORT_BASE + 21))
AGENT_PORT=$((PORT_BASE + 30))  # fleet-a, fleet-b, fleet-c, prom-a, prom-b, prom-c: +0..+5
SVC_PORT=$((PORT_BASE + 50))
FLEET_AGENTS="fleet-a fleet-b fleet-c"
PROM_AGENTS="prom-a prom-b prom-c"

BENCH=fleet_page
. bench/lib.sh
bench_need_root
bench_packages prometheus prometheus-alertmanager nats-server iproute2 python3 curl
bench_binary

out=${OUT_DIR:-$(mktemp -d /tmp/fleet-page.XXXXXX)}
mkdir -p "$out"

# --- network ---------------------------------------------------------------
bench_pair_network

# --- the target's service (the TCP probe's port) and the webhook receiver --------
mkdir -p "$out/www"
ip netns exec "$T" python3 -m http.server "$SVC_PORT" --bind 198.51.100.2 --directory "$out/www" \
  >"$out/service.log" 2>&1 &
pids+=($!)
events="$out/events.log"
: >"$events"
ip netns exec "$P" python3 "$root/bench/page_receiver.py" "$RECV_PORT" "$events" >"$out/receiver.out" 2>&1 &
pids+=($!)

wait_http "http://198.51.100.2:$SVC_PORT/" 10
for _ in $(seq 50); do grep -q listening "$out/receiver.out" && break; sleep 0.1; done
grep -q listening "$out/receiver.out" || { echo "fleet_page: the receiver did not start" >&2; exit 1; }

# --- per-run daemons ---------------------------------------------------------
agent_config() {  # DIR NAME PORT TARGET EXTRA
  cat >"$1/agent.toml" <<EOF
[agent]
name = "$2"
listen = "127.0.0.1:$3"
state_dir = "$1/state"
$5
[[target]]
name = "$4"
address = "198.51.100.2"
site = "bench"
  [[target.probe]]
  kind = "icmp"
  [[target.probe]]
  kind = "tcp"
  port = $SVC_PORT
EOF
}

start_all() {  # RUNDIR
  local r=$1 d i=0 a
  mkdir -p "$r/nats" "$r/prom/tsdb" "$r/prom/targets" "$r/am"
  # nats-server: JetStream, monitoring for the bus cost; a fresh store per run.
  ip netns exec "$P" nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON_PORT" -sd "$r/nats" \
    >"$r/nats/nats.log" 2>&1 &
  run_pids+=($!)
  for _ in $(seq 100); do grep -q "Server is ready" "$r/nats/nats.log" && break; sleep 0.1; done
  grep -q "Server is ready" "$r/nats/nats.log" || { echo "fleet_page: nats-server did not start:" >&2; cat "$r/nats/nats.log" >&2; exit 1; }

  local targets=""
  for a in $FLEET_AGENTS $PROM_AGENTS; do
    d="$r/$a"
    mkdir -p "$d"
    case $a in
      fleet-*)
        agent_config "$d" "$a" $((AGENT_PORT + i)) target-fleet "
[fleet]
servers = [\"nats://127.0.0.1:$NATS_PORT\"]
name = \"bench\"
"
        cat >>"$d/agent.toml" <<EOF

[[sink]]
name = "page"
type = "webhook"
url = "http://127.0.0.1:$RECV_PORT/fleet"
min_severity = "critical"

[[sink]]
name = "info"
type = "webhook"
url = "http://127.0.0.1:$RECV_PORT/fleet-info"
EOF
        ;;
      prom-*)
        agent_config "$d" "$a" $((AGENT_PORT + i)) target-prom ""
        cat >>"$d/agent.toml" <<EOF

[[sink]]
name = "page"
type = "webhook"
url = "http://127.0.0.1:$RECV_PORT/alone-$a"
min_severity = "critical"
EOF
        ;;
    esac
    ip netns exec "$P" "$bin" run -c "$d/agent.toml" ${NIGHTSHIFT_ARGS:-} >"$d/agent.log" 2>&1 &
    run_pids+=($!)
    targets="$targets${targets:+, }\"127.0.0.1:$((AGENT_PORT + i))\""
    i=$((i + 1))
  done

  # Prometheus and Alertmanager as shipped, pointed at this run's ports and files.
  echo "[{\"targets\": [$targets]}]" >"$r/prom/targets/agents.json"
  sed -e "s|rules/\*\.yml|$root/deploy/prometheus/rules/*.yml|" \
      -e "s|127\.0\.0\.1:9093|127.0.0.1:$AM_PORT|" \
      -e "s|targets/\*\.json|$r/prom/targets/*.json|" \
      "$root/deploy/prometheus/prometheus.yml" >"$r/prom/prometheus.yml"
  echo "http://127.0.0.1:$RECV_PORT/prom-chat" >"$r/am/slack-url"
  sed -e "s|http://127\.0\.0\.1:8080/page|http://127.0.0.1:$RECV_PORT/prom-page|" \
      -e "s|/etc/alertmanager/slack-webhook-url|$r/am/slack-url|" \
      "$root/deploy/alertmanager/alertmanager.yml" >"$r/am/alertmanager.yml"
  ip netns exec "$P" prometheus-alertmanager --config.file="$r/am/alertmanager.yml" --storage.path="$r/am" \
    --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= >"$r/am/alertmanager.log" 2>&1 &
  run_pids+=($!)
  ip netns exec "$P" prometheus --config.file="$r/prom/prometheus.yml" --storage.tsdb.path="$r/prom/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$r/prom/prometheus.log" 2>&1 &
  run_pids+=($!)
  wait_http "http://127.0.0.1:$AM_PORT/-/ready" 30
  wait_http "http://127.0.0.1:$PROM_PORT/-/ready" 30

  for a in $FLEET_AGENTS $PROM_AGENTS; do
    for _ in $(seq 100); do grep -q "msg=listening" "$r/$a/agent.log" && break; sleep 0.1; done
    grep -q "msg=listening" "$r/$a/agent.log" || { echo "fleet_page: $a did not start:" >&2; cat "$r/$a/agent.log" >&2; exit 1; }
  done
  local pid
  for pid in "${run_pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "fleet_page: a daemon of $r exited early (see its log there)" >&2; exit 1; }
  done
}

# Ready to cut: every fleet agent connected to NATS and reporting the target
# up, and Prometheus has scraped all six agents up. Bounded.
wait_ready() {
  local deadline=$((SECONDS + 90)) i a ok m up why=""
  while [ $SECONDS -lt $deadline ]; do
    ok=1
    why=""
    i=0
    for a in $FLEET_AGENTS $PROM_AGENTS; do
      m=$(inp curl -fsS --max-time 2 "http://127.0.0.1:$((AGENT_PORT + i))/metrics" 2>/dev/null || true)
      case $a in
        fleet-*) grep -Eq '^nightshift_fleet_connected(\{[^}]*\})? 1$' <<<"$m" || { ok=0; why="$why $a:not-connected"; } ;;
      esac
      grep -Eq '^probe_success\{[^}]*kind="tcp"[^}]*\} 1$' <<<"$m" || { ok=0; why="$why $a:target-not-up"; }
      i=$((i + 1))
    done
    up=$(inp curl -fsS --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/query" \
           --data-urlencode 'query=count(up{job="nightshift"} == 1)' 2>/dev/null |
         python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)' 2>/dev/null || echo 0)
    [ "$up" = 6 ] || { ok=0; why="$why prometheus-up=$up"; }
    [ $ok = 1 ] && return 0
    sleep 1
  done
  echo "fleet_page: not ready within 90 s (fleet connected, targets up, Prometheus scraping all six):$why" >&2
  return 1
}

# Per fleet agent: name in_msgs out_msgs in_bytes out_bytes, as nats-server counts them
# (in = sent by the agent, out = delivered to it).
connz() {
  inp curl -fsS --max-time 2 "http://127.0.0.1:$NATS_MON_PORT/connz?limit=1024" |
    python3 -c '
import json, sys
for c in json.load(sys.stdin).get("connections", []):
    n = c.get("name", "")
    if n.startswith("nightshift "):
        print(n.split(" ", 1)[1], c["in_msgs"], c["out_msgs"], c["in_bytes"], c["out_bytes"])' || true
}
# bus_delta BEFORE AFTER SECONDS LABEL RUN: one line per agent, per-second rates and totals
bus_delta() {
  awk -v secs="$3" -v label="$4" -v run="$5" '
    NR == FNR { a[$1] = $2; b[$1] = $3; c[$1] = $4; d[$1] = $5; next }
    ($1 in a) { printf "%s %s %s %.1f %d %d %d %d\n", run, label, $1, secs, $2 - a[$1], $3 - b[$1], $4 - c[$1], $5 - d[$1] }' "$1" "$2"
}

# first_page SOURCE SINCE [GREP]: arrival time of SOURCE's first non-resolve POST after SINCE
first_page() {
  awk -v s="$1" -v t="$2" -v g="${3:-}" '$2 == s && $3 != "resolved" && $1 + 0 >= t + 0 && index($0, g) { print $1; exit }' "$events"
}
# pages SOURCE FROM TO [GREP]: number of non-resolve POSTs from SOURCE in [FROM, TO]
pages() {
  awk -v s="$1" -v a="$2" -v b="$3" -v g="${4:-}" '$2 == s && $3 != "resolved" && $1 + 0 >= a + 0 && $1 + 0 <= b + 0 && index($0, g) { n++ } END { print n + 0 }' "$events"
}
# An agent's page: a declared or reopened incident (an "updated" of the same
# incident comes under the same id and dedup key and pages nobody anew).
declared_pages() {  # SOURCE FROM TO
  awk -v s="$1" -v a="$2" -v b="$3" '$2 == s && ($3 == "declared" || $3 == "reopened") && $1 + 0 >= a + 0 && $1 + 0 <= b + 0 { n++ } END { print n + 0 }' "$events"
}
fleet_ids() {  # FROM TO: distinct incident ids in the fleet's critical notifications
  awk -v a="$1" -v b="$2" '$2 == "fleet" && $1 + 0 >= a + 0 && $1 + 0 <= b + 0' "$events" |
    grep -o '"idempotency_key":"[^":]*' | sort -u | wc -l
}
# The shipped rule's page for TARGET: Alertmanager's "firing" POST naming the alert and the target.
PROM_ALERT=TargetDownFromSeveralVantagePoints
prom_match() { echo "\"target\":\"$1\""; }

warmup() {
  local ms=$(((RANDOM * 32768 + RANDOM) % 30000))
  printf '%d.%03d\n' $((WARMUP + ms / 1000)) $((ms % 1000))
}
delta() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

bench_start=$SECONDS
log "output in $out; load: $(uptime)"
{
  echo "load_start $(uptime)"
  echo "$(nats-server --version), $(prometheus --version 2>&1 | head -1), $(prometheus-alertmanager --version 2>&1 | head -1), $(nproc) cores"
} >"$out/summary.txt"

latencies="$out/latencies.txt"  # run pipeline seconds|miss pages
bus="$out/bus.txt"              # run window agent seconds sent_msgs recv_msgs sent_bytes recv_bytes
: >"$latencies"
: >"$bus"
: >"$out/anomalies.txt"
for run in $(seq "$RUNS"); do
  rd="$out/run$run"
  start_all "$rd"
  wait_ready
  warm=$(warmup)
  log "run $run/$RUNS: ready; healthy for $warm s"
  connz >"$rd/connz0.txt"
  t_steady=$(now)
  sleep "$warm"
  connz >"$rd/connz1.txt"
  t_down=$(now)
  ip -n "$T" link set vt down
  log "run $run: link down at $t_down"
  deadline=$((SECONDS + PAGE_WAIT))
  while [ $SECONDS -lt $deadline ]; do
    [ -n "$(first_page fleet "$t_down")" ] && [ -n "$(first_page prom-page "$t_down" "$(prom_match target-prom)")" ] && break
    sleep 0.2
  done
  sleep "$SETTLE"
  t_end=$(now)
  connz >"$rd/connz2.txt"
  ip -n "$T" link set vt up
  bus_delta "$rd/connz0.txt" "$rd/connz1.txt" "$(delta "$t_down" "$t_steady")" steady "$run" >>"$bus"
  bus_delta "$rd/connz1.txt" "$rd/connz2.txt" "$(delta "$t_end" "$t_down")" outage "$run" >>"$bus"

  at=$(first_page fleet "$t_down")
  fleet_s=$([ -n "$at" ] && delta "$at" "$t_down" || echo miss)
  at=$(first_page prom-page "$t_down" "$(prom_match target-prom)")
  prom_s=$([ -n "$at" ] && delta "$at" "$t_down" || echo miss)
  fp=$(declared_pages fleet "$t_down" "$t_end")
  fn=$(pages fleet "$t_down" "$t_end")
  fids=$(fleet_ids "$t_down" "$t_end")
  pp=$(pages prom-page "$t_down" "$t_end" "$(prom_match target-prom)")
  pf=$(pages prom-page 0 "$t_end" "$(prom_match target-fleet)")
  # Reference: the three agents outside the fleet, each paging through its own webhook.
  alone=0
  alone_at=""
  for a in $PROM_AGENTS; do
    alone=$((alone + $(declared_pages "alone-$a" "$t_down" "$t_end")))
    at=$(first_page "alone-$a" "$t_down")
    if [ -n "$at" ] && { [ -z "$alone_at" ] || awk -v x="$at" -v y="$alone_at" 'BEGIN { exit !(x < y) }'; }; then alone_at=$at; fi
  done
  alone_s=$([ -n "$alone_at" ] && delta "$alone_at" "$t_down" || echo miss)
  winfo=$(pages fleet-info "$t_down" "$t_end")
  echo "$run fleet $fleet_s $fp $fn $fids $pf" >>"$latencies"
  echo "$run prometheus $prom_s $pp" >>"$latencies"
  echo "$run alone $alone_s $alone" >>"$latencies"
  log "run $run: fleet $fleet_s s ($fp pages, $fn critical notifications, $fids ids, Prometheus pages for it: $pf; info: $winfo); prometheus $prom_s s ($pp pages); agents without a fleet $alone_s s ($alone pages)"
  # Pages before the cut would be false pages of a healthy target: record them.
  for s in fleet prom-page alone-prom-a alone-prom-b alone-prom-c; do
    n=$(pages "$s" 0 "$t_down")
    [ "$n" = 0 ] || echo "run$run $s pages_before_cut $n" >>"$out/anomalies.txt"
  done
  grep -h "fleet: " "$rd"/fleet-*/agent.log >"$rd/fleet-lines.txt" 2>/dev/null || true
  stop_all
  mv "$events" "$rd/events.log"
  : >"$events"
done
echo "load_end $(uptime)" >>"$out/summary.txt"

# --- summary -------------------------------------------------------------------
stats() {  # PIPELINE: median min max of the non-missed latencies
  awk -v p="$1" '$2 == p && $3 != "miss" { print $3 }' "$latencies" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - -"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f %.2f %.2f\n", m, v[1], v[NR] }'
}
{
  echo "runs $RUNS, total $((SECONDS - bench_start)) s"
  echo
  echo "| pipeline | outages | pages per outage | median s | min s | max s | missed |"
  echo "|---|---:|---|---:|---:|---:|---:|"
  read -r fmed fmin fmax <<<"$(stats fleet)"
  read -r pmed pmin pmax <<<"$(stats prometheus)"
  read -r amed amin amax <<<"$(stats alone)"
  per_outage() { awk -v p="$1" '$2 == p { printf "%s%s", s, $4; s = ", " }' "$latencies"; }
  missed() { awk -v p="$1" '$2 == p && $3 == "miss"' "$latencies" | wc -l; }
  echo "| 3 agents in a fleet (NATS JetStream), the owner's webhook | $RUNS | $(per_outage fleet) | $fmed | $fmin | $fmax | $(missed fleet) |"
  echo "| 3 agents, Prometheus $PROM_ALERT + Alertmanager | $RUNS | $(per_outage prometheus) | $pmed | $pmin | $pmax | $(missed prometheus) |"
  echo "| reference: 3 agents without a fleet, each its own webhook (first page) | $RUNS | $(per_outage alone) | $amed | $amin | $amax | $(missed alone) |"
  echo
  echo "median ratio prometheus/fleet: $(awk -v a="$pmed" -v b="$fmed" 'BEGIN { if (b + 0 > 0) printf "%.1f", a / b; else print "-" }')"
  echo "fleet critical notifications per outage (all events): $(awk '$2 == "fleet" { printf "%s%s", s, $5; s = ", " }' "$latencies")"
  echo "fleet incident ids per outage: $(awk '$2 == "fleet" { printf "%s%s", s, $6; s = ", " }' "$latencies")"
  echo "Prometheus pages for the fleet's target (expected 0): $(awk '$2 == "fleet" { printf "%s%s", s, $7; s = ", " }' "$latencies")"
  echo
  echo "Bus (nats-server /connz, per fleet agent, mean over agents and runs):"
  echo
  echo "| window | seconds per run | sent msg/s | sent B/s | received msg/s | received B/s | sent msgs per agent | received msgs per agent |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for w in steady outage; do
    awk -v w="$w" '$2 == w { n++; s += $4; sm += $5; rm += $6; sb += $7; rb += $8; if ($4 > 0) { r1 += $5 / $4; r2 += $7 / $4; r3 += $6 / $4; r4 += $8 / $4 } }
      END { if (n == 0) exit; printf "| %s | %.1f | %.2f | %.0f | %.2f | %.0f | %.1f | %.1f |\n", w, s / n, r1 / n, r2 / n, r3 / n, r4 / n, sm / n, rm / n }' "$bus"
  done
  if [ -s "$out/anomalies.txt" ]; then echo; echo "anomalies:"; cat "$out/anomalies.txt"; fi
} >>"$out/summary.txt"
cat "$out/summary.txt"
