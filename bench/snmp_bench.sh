#!/usr/bin/env bash
# SNMP at fleet scale (issue 5): D devices, each with >= 8 interfaces, polled
# every 10 s by nightshift; then the same devices walked by Debian's
# prometheus-snmp-exporter (bench/snmp_exporter.yml: the same tables), all
# devices at once as Prometheus would scrape them. One snmpd serves every
# "device" on its own UDP port, in a private network namespace with 10 veth
# interfaces (12 in all with lo), so both tools walk the same data
# (nightshift's interface_metrics = "basic": those tables, plus ifDescr).
#   sudo bench/snmp_bench.sh [DEVICES=200] [SECONDS=60]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
D=${2:-60}
BIN=${NIGHTSHIFT_BIN:-build/nightshift}
[ -x "$BIN" ] || { echo "build first: scripts/test.sh" >&2; exit 1; }
command -v prometheus-snmp-exporter >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus-snmp-exporter >/dev/null
[ -x /usr/bin/time ] || apt-get install -y -q time >/dev/null

if [ "${NIGHTSHIFT_BENCH_IN_NETNS:-}" != 1 ]; then
  exec unshare -n env NIGHTSHIFT_BENCH_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up
# 5 veth pairs: 10 interfaces besides lo (this kernel has no dummy driver).
for i in $(seq 0 4); do
  ip link add "va$i" type veth peer name "vb$i"
  ip link set "va$i" up
  ip link set "vb$i" up
done

work=$(mktemp -d /tmp/nightshift-snmp-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

addresses=$(for ((i = 0; i < N; i++)); do printf 'udp:127.0.0.1:%d,' $((21000 + i)); done)
printf 'rocommunity public 127.0.0.1\n' > "$work/snmpd.conf"
snmpd -f -Lo -C -c "$work/snmpd.conf" -p "$work/snmpd.pid" --persistentDir="$work/snmp" "${addresses%,}" > "$work/snmpd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do snmpget -v2c -c public -t 1 -r 0 127.0.0.1:$((21000 + N - 1)) 1.3.6.1.2.1.1.3.0 >/dev/null 2>&1 && break; sleep 0.2; done
ifs=$(snmpbulkwalk -v2c -c public -Oq 127.0.0.1:21000 1.3.6.1.2.1.31.1.1.1.1 | wc -l)

{
  printf '[agent]\nname = "bench"\nlisten = "127.0.0.1:9667"\nstate_dir = "%s/state"\n' "$work"
  printf '[defaults]\ninterval = "10s"\ntimeout = "5s"\n'
  for ((i = 0; i < N; i++)); do
    printf '[[target]]\nname = "dev%d"\naddress = "127.0.0.1"\n  [[target.probe]]\n  kind = "snmp"\n  port = %d\n  community = "public"\n  interface_metrics = "basic"\n' \
      "$i" $((21000 + i))
  done
} > "$work/agent.toml"

/usr/bin/time -v -o "$work/time.txt" "$BIN" run -c "$work/agent.toml" 2> "$work/agent.log" &
timer=$!
sleep "$D"
curl -s 127.0.0.1:9667/metrics > "$work/metrics.txt"
agent=$(pgrep -P "$timer" -x nightshift || true)
kill -TERM "${agent:-$timer}" 2>/dev/null || true
wait "$timer" || true
cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u + s}' "$work/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/time.txt")
ok=$(grep -c '^probe_success{.*kind="snmp".* 1$' "$work/metrics.txt" || true)
polls=$(awk '/^nightshift_probes_sent_total\{.*kind="snmp"/ {print $2}' "$work/metrics.txt")
median_poll=$(grep '^probe_duration_seconds{.*kind="snmp"' "$work/metrics.txt" | awk '{print $2}' | sort -g | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)] * 1000}')
series=$(grep -c '^ifOperStatus{' "$work/metrics.txt" || true)

# The exporter: every device scraped at once (a Prometheus scrape of the fleet), 3 rounds.
prometheus-snmp-exporter --config.file=bench/snmp_exporter.yml --web.listen-address=127.0.0.1:19117 > "$work/exporter.log" 2>&1 &
exporter=$!
pids+=($exporter)
for _ in $(seq 50); do curl -sf "127.0.0.1:19117/metrics" >/dev/null && break; sleep 0.1; done
clk=$(getconf CLK_TCK)
cpu_of() { awk -v t="$clk" '{printf "%.3f", ($14 + $15) / t}' "/proc/$1/stat"; }
best_wall=""
exporter_cpu_total=0
for round in 1 2 3; do
  before=$(cpu_of "$exporter")
  start=$(date +%s.%N)
  for ((i = 0; i < N; i++)); do
    curl -s -o "$work/scrape.$i" "127.0.0.1:19117/snmp?module=if_mib&target=127.0.0.1:$((21000 + i))" &
  done
  wait $(jobs -p | grep -v "^$exporter$" | grep -v "^${pids[0]}$") 2>/dev/null || true
  end=$(date +%s.%N)
  after=$(cpu_of "$exporter")
  wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
  exporter_cpu_total=$(awk -v x="$exporter_cpu_total" -v a="$before" -v b="$after" 'BEGIN {printf "%.3f", x + b - a}')
  best_wall=$(awk -v w="$wall" -v b="$best_wall" 'BEGIN {if (b == "" || w < b) print w; else print b}')
done
exporter_ok=$(grep -l '^ifOperStatus{' "$work"/scrape.* | wc -l)
exporter_rss=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$exporter/status")
exporter_cycle_cpu=$(awk -v x="$exporter_cpu_total" 'BEGIN {printf "%.3f", x / 3}')
cycles=$(awk -v d="$D" 'BEGIN {printf "%.1f", d / 10}')
ns_cycle_cpu=$(awk -v c="$cpu" -v n="$cycles" 'BEGIN {printf "%.3f", c / n}')

printf 'SNMP bench: %d devices x %d interfaces, one snmpd, %s cores\n\n' "$N" "$ifs" "$(nproc)"
printf '| tool | devices answering | CPU per poll cycle (s) | cycle wall | RSS MiB |\n|---|---:|---:|---:|---:|\n'
printf '| nightshift (every 10 s for %d s: %s%% of a core, %s polls, %s ifOperStatus series) | %s | %s | median poll %s ms (spread over the 10 s interval) | %s |\n' \
  "$D" "$(awk -v c="$cpu" -v d="$D" 'BEGIN {printf "%.1f", c * 100 / d}')" "$polls" "$series" "$ok" "$ns_cycle_cpu" "$median_poll" "$rss"
printf '| prometheus-snmp-exporter 0.21 (all %d at once, best of 3) | %s | %s | %s s | %s |\n' "$N" "$exporter_ok" "$exporter_cycle_cpu" "$best_wall" "$exporter_rss"
printf '\nCPU per cycle, exporter / nightshift: %s\n' "$(awk -v a="$exporter_cycle_cpu" -v b="$ns_cycle_cpu" 'BEGIN {printf "%.1fx", a / b}')"
