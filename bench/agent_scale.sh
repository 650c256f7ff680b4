#!/usr/bin/env bash
# The whole agent against its own ICMP engine, on the same N loopback targets,
# one after the other in one run, inside a private network namespace (every
# address in 127/8 answers; nothing leaves the namespace).
#
#   sudo bench/agent_scale.sh [N=10000] [SECONDS=60] [INTERVAL_MS=1000] [COUNT=1]
#
# 1. The engine alone: `nightshift probe icmp -q -c COUNT -n ROUNDS -i INTERVAL`
#    (the targets' starts spread over the interval as the scheduler spreads
#    them), CPU from /usr/bin/time -v.
# 2. The agent (`nightshift run`, built-in rules, incidents on) on the same
#    addresses. After a warm-up of a quarter of the run, over the rest: CPU
#    from /proc/PID/stat while a Prometheus-like scraper (gzip, OpenMetrics
#    preferred) scrapes every 15 s; steady RSS (VmRSS between scrapes); then
#    one plain and one gzip scrape (bytes, and the time to the last byte: the
#    body is rendered while it is sent, so that is the render time),
#    four concurrent scrapes (peak RSS while they run) and the scheduler lag
#    p99 over the measured window (from nightshift_scheduler_lag_seconds).
# Prints one markdown row; ratios are agent / engine.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
D=${2:-60}
INTERVAL_MS=${3:-1000}
COUNT=${4:-1}
PORT=${NIGHTSHIFT_BENCH_PORT:-19310}
BIN=$(realpath "${NIGHTSHIFT_BIN:-build/nightshift}")
[ -x "$BIN" ] || { echo "build first: cmake -S . -B build -G Ninja && ninja -C build" >&2; exit 1; }
for tool in /usr/bin/time curl; do
  [ -x "$(command -v "$tool")" ] || { echo "needs $tool (apt-get install time curl)" >&2; exit 1; }
done

if [ "${NIGHTSHIFT_BENCH_IN_NETNS:-}" != 1 ]; then
  exec unshare -n env NIGHTSHIFT_BENCH_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up

work=$(mktemp -d /tmp/nightshift-scale-XXXXXX)
agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Distinct loopback addresses from 127.1.0.0 upward (as bench/icmp_bench.sh).
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "127.%d.%d.%d\n", 1 + int(i / 65536), int(i / 256) % 256, i % 256 }' \
  > "$work/addresses"
rounds=$((D * 1000 / INTERVAL_MS))
spacing=100
timeout_ms=$((INTERVAL_MS / 2 < 1000 ? INTERVAL_MS / 2 : 1000))

# --- 1. the engine alone --------------------------------------------------------
/usr/bin/time -v -o "$work/engine.time" "$BIN" probe icmp -q -c "$COUNT" -p "$spacing" -n "$rounds" \
  -i "$INTERVAL_MS" -t "$timeout_ms" -f "$work/addresses" > /dev/null 2> "$work/engine.err" || true
engine_cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u + s}' "$work/engine.time")
engine_wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$work/engine.time")
engine_rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/engine.time")

# --- 2. the agent ------------------------------------------------------------------
{
  printf '[agent]\nname = "bench"\nlisten = "127.0.0.1:%d"\nstate_dir = "%s/state"\n' "$PORT" "$work"
  printf 'max_probes_per_second = %d\n' $((N * 2000 / INTERVAL_MS + 100))
  printf '[defaults]\ninterval = "%dms"\ntimeout = "%dms"\n' "$INTERVAL_MS" "$timeout_ms"
  awk -v c="$COUNT" '{ printf "[[target]]\nname = \"t%d\"\naddress = \"%s\"\n  [[target.probe]]\n  kind = \"icmp\"\n  count = %d\n", NR - 1, $1, c }' \
    "$work/addresses"
} > "$work/agent.toml"

"$BIN" run -c "$work/agent.toml" 2> "$work/agent.log" &
agent_pid=$!
url="http://127.0.0.1:$PORT/metrics"
for _ in $(seq 1 600); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
  sleep 0.1
done

PROM_ACCEPT='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
cpu_ticks() { awk '{print $14 + $15}' "/proc/$agent_pid/stat"; }
rss_mib() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$agent_pid/status"; }
hwm_mib() { awk '/^VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$agent_pid/status"; }
prom_scrape() { curl -s -o /dev/null -H "Accept: $PROM_ACCEPT" -H 'Accept-Encoding: gzip' "$url" || true; }
# lag_p99 FILE_BEFORE FILE_AFTER: the upper bound of the bucket holding the
# 99th percentile of the scheduler lag observed between the two scrapes.
lag_p99() {
  awk '/^nightshift_scheduler_lag_seconds_bucket/ {
         match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
         v = $NF; if (FILENAME == ARGV[1]) before[le] = v; else { after[le] = v; order[++n] = le } }
       END { total = after["+Inf"] - before["+Inf"]
             for (i = 1; i <= n; i++) { le = order[i]; if (after[le] - before[le] >= 0.99 * total) { print le * 1000; exit } } }' "$1" "$2"
}

warmup=$((D / 4))
sleep "$warmup"
curl -s "$url" > "$work/before.txt"
ticks0=$(cpu_ticks)
t0=$(date +%s.%N)
rss_samples=()
measured=$((D - warmup))
elapsed=0
while [ "$elapsed" -lt "$measured" ]; do
  step=$((measured - elapsed < 15 ? measured - elapsed : 15))
  sleep $((step / 2))
  rss_samples+=("$(rss_mib)")  # halfway between scrapes
  sleep $((step - step / 2))
  elapsed=$((elapsed + step))
  [ "$elapsed" -lt "$measured" ] && prom_scrape
done
ticks1=$(cpu_ticks)
t1=$(date +%s.%N)
curl -s "$url" > "$work/after.txt"
hz=$(getconf CLK_TCK)
agent_cpu=$(awk -v a="$ticks0" -v b="$ticks1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
agent_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
steady_rss=$(printf '%s\n' "${rss_samples[@]}" | sort -n | tail -1)
lag=$(lag_p99 "$work/before.txt" "$work/after.txt")

plain=$(curl -s -o "$work/plain.txt" -w '%{size_download} %{time_total}' "$url")
gzip=$(curl -s -o "$work/gzip.bin" -H 'Accept-Encoding: gzip' -w '%{size_download} %{time_total}' "$url")
om_ok=$(curl -s -H "Accept: $PROM_ACCEPT" "$url" | tail -1)
series=$(grep -vc '^#' "$work/plain.txt" || true)
scrapers=()
for _ in 1 2 3 4; do curl -s -o /dev/null "$url" & scrapers+=($!); done
wait "${scrapers[@]}" || true
peak_rss=$(hwm_mib)
up=$(grep -c '^probe_success{.*} 1$' "$work/plain.txt" || true)
kill "$agent_pid"
wait "$agent_pid" || true
agent_pid=

engine_share=$(awk -v c="$engine_cpu" -v w="$engine_wall" 'BEGIN {printf "%.1f", 100 * c / w}')
agent_share=$(awk -v c="$agent_cpu" -v w="$agent_wall" 'BEGIN {printf "%.1f", 100 * c / w}')
ratio=$(awk -v a="$agent_share" -v e="$engine_share" 'BEGIN {printf "%.2f", (e > 0 ? a / e : 0)}')
printf '| targets | interval | echoes | engine CPU %% | agent CPU %% | agent/engine | engine RSS MiB | agent steady RSS MiB | peak RSS MiB (run, with 4 scrapes at once) | series | scrape MB plain | scrape MB gzip | render ms plain | render ms gzip | lag p99 ms | up | OpenMetrics ends |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n'
read -r plain_bytes plain_time <<< "$plain"
read -r gzip_bytes gzip_time <<< "$gzip"
printf '| %d | %d ms | %d | %s | %s | %s | %s | %s | %s | %s | %.1f | %.2f | %.0f | %.0f | %s | %s | %s |\n' \
  "$N" "$INTERVAL_MS" "$COUNT" "$engine_share" "$agent_share" "$ratio" "$engine_rss" "$steady_rss" "$peak_rss" \
  "$series" "$(awk -v b="$plain_bytes" 'BEGIN {print b / 1e6}')" "$(awk -v b="$gzip_bytes" 'BEGIN {print b / 1e6}')" \
  "$(awk -v t="$plain_time" 'BEGIN {print t * 1000}')" "$(awk -v t="$gzip_time" 'BEGIN {print t * 1000}')" \
  "${lag:-?}" "$up" "$om_ok"
